"""The HTTP API on the embedded runner: batches, bad input, backpressure, check."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.credentials import authorize
from tokenwarden.app import create_app
from tokenwarden.settings import Settings

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def event(i: int = 0, **patch: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"evt-{i}",
        "time": 1_800_000_000 + i,
        "tenant": "acme",
        "action": "token.used",
        "user": "jane@acme.example",
        "agent": "crm-followup",
        "client_id": "agent-crm",
        "token": {"id": f"at-{i}", "family_id": "fam-1", "type": "access_token"},
    }
    base.update(patch)
    return base


def refreshed(parent: str, child: str, at: int, asn: int = 64500, **patch: Any) -> dict[str, Any]:
    return event(
        at,
        id=f"evt-r-{parent}-{child}",
        action="token.refreshed",
        token={"parent_id": parent, "id": child, "family_id": "fam-1", "type": "refresh_token"},
        source={"ip": "203.0.113.5", "asn": asn},
        **patch,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'tw.db'}",
        max_batch_events=50,
        max_batch_bytes=64 * 1024,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        authorize(c)
        yield c


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["database"] == "ok"


def test_a_good_batch_is_accepted(client: TestClient) -> None:
    r = client.post("/v1/events?wait=true", json=[event(i) for i in range(5)])
    assert r.status_code == 202
    assert r.json() == {"accepted": 5, "rejected": [], "ignored": 0, "detections": 0, "orders": 0}


def test_ndjson_is_accepted(client: TestClient) -> None:
    body = b"\n".join(orjson.dumps(event(i)) for i in range(3))
    r = client.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202
    assert r.json()["accepted"] == 3


def test_partly_bad_batch_lists_each_rejected_index(client: TestClient) -> None:
    batch = [event(0), event(1, action="token.stolen"), event(2, time="never"), event(3)]
    r = client.post("/v1/events?wait=true", json=batch)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2
    assert [x["index"] for x in body["rejected"]] == [1, 2]
    assert "unknown action 'token.stolen'" in body["rejected"][0]["reason"]
    assert "not RFC 3339" in body["rejected"][1]["reason"]


def test_all_bad_is_422_and_changes_nothing(client: TestClient) -> None:
    r = client.post("/v1/events", json=[event(0, tenant=""), {"nope": 1}])
    assert r.status_code == 422
    assert r.json()["error"] == "no_valid_events"
    assert [x["index"] for x in r.json()["rejected"]] == [0, 1]
    assert client.get("/v1/families/fam-1").status_code == 404


def test_malformed_json_is_400(client: TestClient) -> None:
    r = client.post(
        "/v1/events", content=b'[{"id": 1', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_batch"
    assert "malformed JSON" in r.json()["detail"]


def test_oversize_bodies_and_batches_are_413(client: TestClient) -> None:
    r = client.post(
        "/v1/events",
        content=b"[" + b" " * 70_000 + b"]",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"] == "batch_too_large"
    r = client.post("/v1/events", json=[event(i) for i in range(51)])
    assert r.status_code == 413
    assert "51 events" in r.json()["detail"]


def test_raw_tokens_are_never_stored(client: TestClient, settings: Settings) -> None:
    batch = [
        event(
            0,
            token={"id": JWT, "family_id": "fam-1", "type": "access_token"},
            attributes={"authorization": f"Bearer {JWT}"},
        )
    ]
    assert client.post("/v1/events?wait=true", json=batch).status_code == 202
    family = client.get("/v1/families/fam-1").json()
    assert family["tokens"][0]["token_id"].startswith("h1:")
    db_file = Path(settings.database_url.removeprefix("sqlite:///"))
    client.get("/healthz")
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob("tw.db*"))
    assert JWT.encode() not in raw
    # the gateway may check with the raw token: it is hashed the same way
    r = client.post("/v1/check", json={"tenant": "acme", "token_id": JWT})
    assert r.json()["allow"] is True


def test_reuse_revokes_the_family_and_check_denies(client: TestClient) -> None:
    batch = [
        refreshed("rt-0", "rt-1", 0),
        refreshed("rt-1", "rt-2", 600),
        refreshed("rt-1", "rt-x", 900, asn=64999),
    ]
    r = client.post("/v1/events?wait=true", json=batch)
    assert r.json()["detections"] == 1 and r.json()["orders"] == 1
    [det] = client.get("/v1/detections", params={"tenant": "acme"}).json()["items"]
    assert det["detector"] == "refresh_reuse"
    [order] = client.get("/v1/orders").json()["items"]
    assert order["target"] == {"kind": "family", "tenant": "acme", "value": "fam-1"}
    assert order["status"] == "done"
    assert order["detection_ids"] == [det["id"]]
    family = client.get("/v1/families/fam-1", params={"tenant": "acme"}).json()
    assert family["revoked_at"] is not None
    assert all(t["revoked_at"] for t in family["tokens"])
    for query in ({"family_id": "fam-1"}, {"token_id": "rt-2"}, {"token_id": "rt-x"}):
        ans = client.post("/v1/check", json={"tenant": "acme", **query}).json()
        assert ans["allow"] is False, query
        assert ans["order_id"] == order["id"]
    assert client.post("/v1/check", json={"tenant": "acme", "family_id": "fam-2"}).json()["allow"]


def test_check_needs_something_to_check(client: TestClient) -> None:
    r = client.post("/v1/check", json={})
    assert r.status_code == 422
    assert "name at least one" in r.json()["detail"]


def test_check_refuses_malformed_bodies_with_the_field_named(client: TestClient) -> None:
    """The route parses its own body (the gateways' hot path): the answers must still be
    the API's 422 document, naming what is wrong."""
    bad = client.post(
        "/v1/check", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_request"
    assert "JSON" in bad.json()["detail"]
    extra = client.post("/v1/check", json={"tenant": "acme", "password": "x"})
    assert extra.status_code == 422
    assert extra.json()["detail"].startswith("password:")
    long = client.post("/v1/check", json={"tenant": "acme", "family_id": "f" * 257})
    assert long.status_code == 422
    assert "family_id" in long.json()["detail"]
    assert client.post("/v1/check", content=b"").status_code == 422


def test_check_is_documented_with_its_body_and_schemes(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/v1/check"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert {"tenant", "token_id", "family_id"} <= set(schema["properties"])
    assert {"bearer", "apiKey"} <= {name for s in op["security"] for name in s}


def test_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'q.db'}", queue_batches=1)
    app = create_app(settings)
    with TestClient(app) as client:
        authorize(client)
        pipeline = app.state.pipeline
        # hold the worker: the first batch blocks until released
        gate = threading.Event()
        real_detect = pipeline.stages.detect

        def slow_detect(events: Any, *, now: Any) -> Any:
            gate.wait(10)
            return real_detect(events, now=now)

        pipeline.stages.detect = slow_detect
        try:
            responses = [client.post("/v1/events", json=[event(i)]) for i in range(4)]
        finally:
            gate.set()
        assert responses[0].status_code == 202
        refused = [r for r in responses if r.status_code == 429]
        assert refused, [r.status_code for r in responses]
        assert refused[0].headers["retry-after"] == "1"
        assert refused[0].json()["error"] == "queue_full"
        # nothing was silently dropped: every accepted batch is processed
        accepted = sum(r.status_code == 202 for r in responses)
        for _ in range(1000):  # a client honouring 429 retries until the queue has room
            if client.post("/v1/events?wait=true", json=[event(99)]).status_code == 202:
                break
        assert pipeline.processed_events == accepted + 1
