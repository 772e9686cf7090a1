"""Nothing is open by default: every route needs a credential, and the right role or scope.

The route table is read from the app itself, so a route added later is covered without
anyone remembering to list it here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.credentials import bearer, mint_key
from tests.tokenwarden.auth_fixtures import OPEN, VIEWER_WRITES, concrete, routes, sqlite_url
from tokenwarden.app import create_app
from tokenwarden.auth.api_keys import IssuedKey, hash_key
from tokenwarden.settings import Settings

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[TestClient, list[IssuedKey]]]:
    issued: list[IssuedKey] = []
    app = create_app(Settings(database_url=sqlite_url(tmp_path)), on_admin_key=issued.append)
    with TestClient(app) as client:
        yield client, issued


@pytest.fixture
def client(started: tuple[TestClient, list[IssuedKey]]) -> TestClient:
    return started[0]


def guarded(client: TestClient) -> list[tuple[str, str]]:
    found = [r for r in routes(client.app) if r not in OPEN]  # type: ignore[arg-type]
    assert len(found) >= 25, found  # the table really was read
    return found


def test_the_route_table_includes_every_admin_route(client: TestClient) -> None:
    table = set(routes(client.app))  # type: ignore[arg-type]
    for expected in [
        ("GET", "/v1/detections"),
        ("GET", "/v1/entities/{entity_key:path}"),
        ("PUT", "/v1/policy"),
        ("DELETE", "/v1/keys/{key_id}"),
        ("GET", "/metrics"),  # not in the OpenAPI schema, still guarded
        ("POST", "/services/collector/raw/1.0"),
    ]:
        assert expected in table


def test_every_route_without_credentials_is_401(client: TestClient) -> None:
    for method, path in guarded(client):
        r = client.request(method, concrete(path))
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        if not path.startswith("/services/collector"):  # HEC answers in HEC's shape
            assert r.headers["www-authenticate"].startswith('Bearer realm="tokenwarden"')


@pytest.mark.parametrize(
    "credential",
    [
        "twk_0123456789abcdef_" + "A" * 43,  # well formed, unknown
        "twk_nonsense",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",  # a JWT, and no issuer is configured
        "hunter2",
    ],
)
def test_an_unknown_credential_is_401_everywhere(client: TestClient, credential: str) -> None:
    for method, path in guarded(client):
        if path.startswith("/services/collector"):
            continue  # HEC: 403 "Invalid token" (covered in test_ingest_formats)
        for headers in (bearer(credential), {"X-API-Key": credential}):
            r = client.request(method, concrete(path), headers=headers)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["error"] == "invalid_token"


def test_a_viewer_on_every_write_route_is_403(client: TestClient) -> None:
    viewer = bearer(mint_key(client.app, tenant="acme", role="viewer"))  # type: ignore[arg-type]
    writes = [(m, p) for m, p in guarded(client) if m in WRITES and (m, p) not in VIEWER_WRITES]
    assert len(writes) >= 10
    for method, path in writes:
        r = client.request(method, concrete(path), headers=viewer)
        assert r.status_code == 403, (method, path, r.status_code, r.text)


def test_a_viewer_reads(client: TestClient) -> None:
    viewer = bearer(mint_key(client.app, tenant="acme", role="viewer"))  # type: ignore[arg-type]
    for path in ("/v1/detections", "/v1/orders", "/v1/kill-switches", "/v1/alerts", "/v1/policy"):
        assert client.get(path, headers=viewer).status_code == 200, path
    check = client.post("/v1/check", json={"family_id": "f"}, headers=viewer)
    assert check.status_code == 200


def test_responder_acts_but_does_not_administer(client: TestClient) -> None:
    responder = bearer(
        mint_key(client.app, tenant="acme", role="responder")  # type: ignore[arg-type]
    )
    thrown = client.post(
        "/v1/kill-switches",
        json={"kind": "agent", "value": "crm", "reason": "suspected injection"},
        headers=responder,
    )
    assert thrown.status_code == 201, thrown.text
    ks = thrown.json()["kill_switch"]["id"]
    assert thrown.json()["kill_switch"]["tenant"] == "acme"  # the caller's tenant
    released = client.post(
        f"/v1/kill-switches/{ks}/release", json={"reason": "false positive"}, headers=responder
    )
    assert released.status_code == 200
    for method, path, body in [
        ("POST", "/v1/keys", {"scopes": ["ingest"]}),
        ("PUT", "/v1/policy", {"modes": {}}),
        ("GET", "/v1/keys", None),
    ]:
        r = client.request(method, path, json=body, headers=responder)
        assert r.status_code == 403, (method, path)


def test_scoped_keys_reach_only_their_routes(client: TestClient) -> None:
    ingest = bearer(mint_key(client.app, tenant="acme", scopes=["ingest"]))  # type: ignore[arg-type]
    check = bearer(mint_key(client.app, tenant="acme", scopes=["check"]))  # type: ignore[arg-type]
    metrics = bearer(mint_key(client.app, tenant="acme", scopes=["metrics"]))  # type: ignore[arg-type]
    event = {"time": 1_800_000_000, "tenant": "acme", "action": "token.used", "user": "u"}
    assert client.post("/v1/events", json=[event], headers=ingest).status_code == 202
    assert client.post("/v1/events", json=[event], headers=check).status_code == 403
    assert client.post("/v1/check", json={"user": "u"}, headers=check).status_code == 200
    assert client.post("/v1/check", json={"user": "u"}, headers=ingest).status_code == 403
    assert client.get("/metrics", headers=metrics).status_code == 200
    assert client.get("/metrics", headers=ingest).status_code == 403
    for headers in (ingest, check, metrics):
        assert client.get("/v1/detections", headers=headers).status_code == 403
        assert client.get("/v1/whoami", headers=headers).status_code == 200


def test_first_start_admin_key_is_shown_once_and_stored_hashed(
    started: tuple[TestClient, list[IssuedKey]], tmp_path: Path
) -> None:
    client, issued = started
    [first] = issued
    assert first.view.tenant is None and first.view.role == "admin"
    me = client.get("/v1/whoami", headers=bearer(first.key)).json()
    assert me == {
        "tenant": None,
        "roles": ["admin"],
        "scopes": ["admin"],
        "kind": "api_key",
        "subject": f"key:{first.key_id}",
    }
    created = client.post(
        "/v1/keys", json={"tenant": "acme", "scopes": ["ingest"]}, headers=bearer(first.key)
    )
    assert created.status_code == 201
    new_key = created.json()["key"]
    listed = client.get("/v1/keys", headers=bearer(first.key)).json()
    assert {k["id"] for k in listed} == {first.key_id, created.json()["id"]}
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    # the store has the hashes and never a key
    db_file = tmp_path / "tw.db"
    with sa.create_engine(f"sqlite:///{db_file}").connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT id, secret_hash FROM api_keys")).all())
    assert stored[first.key_id] == hash_key(first.key)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("tw.db*"))
    for key in (first.key, new_key):
        assert key.encode() not in raw
        assert key.split("_", 2)[2].encode() not in raw  # nor its secret part
    # a restart of the same database makes no second key
    again: list[IssuedKey] = []
    app = create_app(Settings(database_url=sqlite_url(tmp_path)), on_admin_key=again.append)
    with TestClient(app) as second:
        assert second.get("/v1/whoami", headers=bearer(first.key)).status_code == 200
    assert again == []


def test_a_revoked_key_is_401(client: TestClient) -> None:
    admin = bearer(mint_key(client.app))  # type: ignore[arg-type]
    made = client.post("/v1/keys", json={"tenant": "acme", "scopes": ["check"]}, headers=admin)
    key, key_id = made.json()["key"], made.json()["id"]
    assert client.post("/v1/check", json={"user": "u"}, headers=bearer(key)).status_code == 200
    gone = client.delete(f"/v1/keys/{key_id}", headers=admin)
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    r = client.post("/v1/check", json={"user": "u"}, headers=bearer(key))
    assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
    assert client.get("/v1/whoami", headers={"X-API-Key": key}).status_code == 401
    # a key whose secret is wrong is refused too (same id, other secret)
    forged = key[: -len(key.split("_", 2)[2])] + "B" * 43
    assert client.post("/v1/check", json={"user": "u"}, headers=bearer(forged)).status_code == 401


def test_key_validation(client: TestClient) -> None:
    admin = bearer(mint_key(client.app, tenant="acme"))  # type: ignore[arg-type]
    bad = client.post("/v1/keys", json={"scopes": ["ingest"], "role": "viewer"}, headers=admin)
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid")
    other = client.post("/v1/keys", json={"tenant": "beta", "scopes": ["ingest"]}, headers=admin)
    assert other.status_code == 404  # a tenant's admin cannot make keys for another
    own = client.post("/v1/keys", json={"scopes": ["ingest"]}, headers=admin)
    assert own.status_code == 201 and own.json()["tenant"] == "acme"
