"""``CheckFastPath``: ``POST /v1/check`` answered before FastAPI's routing — and every
request it does not answer handed on to the route with its body intact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.credentials import authorize
from tokenwarden.api.check import MAX_FAST_BODY, CheckFastPath
from tokenwarden.app import create_app
from tokenwarden.settings import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'tw.db'}"))) as c:
        authorize(c)
        yield c


class Inner:
    """The app behind the middleware: records what reached it and the body it read."""

    def __init__(self) -> None:
        self.calls = 0
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"route"})

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages)


def call(
    client: TestClient,
    chunks: list[bytes],
    *,
    path: str = "/v1/check",
    method: str = "POST",
    auth: bool = True,
    cut_off: bool = False,
) -> tuple[Inner, list[dict[str, Any]]]:
    """Run the middleware once on a request whose body arrives in ``chunks`` (or, with
    ``cut_off``, whose client goes away after them); return the inner app and what was
    sent."""
    inner = Inner()
    headers = [(b"content-type", b"application/json")]
    if auth:
        headers.append((b"authorization", client.headers["Authorization"].encode()))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers,
        "query_string": b"",
        "app": client.app,
    }
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": cut_off or i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    if cut_off:
        incoming.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(CheckFastPath(inner)(scope, receive, send))
    return inner, sent


def test_a_check_is_answered_without_the_route(client: TestClient) -> None:
    body = orjson.dumps({"tenant": "acme", "family_id": "fam-1"})
    inner, sent = call(client, [body[:10], body[10:20], body[20:]])  # chunks are joined
    assert inner.calls == 0
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    document = orjson.loads(sent[1]["body"])
    assert (document["allow"], document["source"], document["order_id"]) == (
        True,
        "database",
        None,
    )
    # the same answer the route gives through the whole app
    assert client.post("/v1/check", content=body).json() == document


@pytest.mark.parametrize(
    ("body", "auth"),
    [
        (b'{"tenant": "acme", "family_id": "fam-1"}', False),  # no credential: 401
        (b"{not json", True),  # 422
        (b'{"tenant": "acme", "password": "x"}', True),  # 422, the field named
        (b"", True),
    ],
)
def test_a_refused_check_goes_to_the_route_with_its_body(
    client: TestClient, body: bytes, auth: bool
) -> None:
    inner, sent = call(client, [body[:5], body[5:]], auth=auth)
    assert inner.calls == 1
    assert inner.body == body
    assert (sent[0]["status"], sent[1]["body"]) == (299, b"route")


def test_an_oversized_body_goes_to_the_route_whole(client: TestClient) -> None:
    chunk = b"x" * (16 * 1024)
    chunks = [chunk] * (MAX_FAST_BODY // len(chunk) + 3)
    inner, _ = call(client, chunks)
    assert inner.calls == 1
    assert inner.body == b"".join(chunks)
    # and the whole app answers it as a malformed body, not a crash
    r = client.post("/v1/check", content=b"".join(chunks))
    assert r.status_code == 422


def test_a_client_gone_mid_body_is_passed_on(client: TestClient) -> None:
    inner, _ = call(client, [b'{"tenant": ', b'"acme"'], cut_off=True)
    assert inner.calls == 1
    assert inner.body == b'{"tenant": "acme"'
    assert inner.messages[-1] == {"type": "http.disconnect"}


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/check"), ("POST", "/v1/events")])
def test_other_requests_pass_straight_through(client: TestClient, method: str, path: str) -> None:
    inner, sent = call(client, [b"[]"], method=method, path=path)
    assert (inner.calls, inner.body, sent[0]["status"]) == (1, b"[]", 299)
