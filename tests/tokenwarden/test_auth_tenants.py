"""Tenants are isolated: a principal of tenant A never sees or changes tenant B — another
tenant's objects are 404 (as if they did not exist), never 403, and lists never leak."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.credentials import bearer, mint_key
from tests.tokenwarden.auth_fixtures import sqlite_url
from tokenwarden.app import create_app
from tokenwarden.settings import Settings


def refreshed(tenant: str, parent: str, child: str, at: int, asn: int) -> dict[str, Any]:
    return {
        "id": f"{tenant}-{parent}-{child}",
        "time": 1_800_000_000 + at,
        "tenant": tenant,
        "action": "token.refreshed",
        "user": "jane",
        "agent": "crm",
        "client_id": "agent-crm",
        "audience": "https://api.example",
        "token": {"parent_id": parent, "id": child, "family_id": "fam-1", "type": "refresh_token"},
        "source": {"ip": "203.0.113.5", "asn": asn},
    }


def reuse(tenant: str) -> list[dict[str, Any]]:
    return [
        refreshed(tenant, "rt-0", "rt-1", 0, 64500),
        refreshed(tenant, "rt-1", "rt-2", 600, 64500),
        refreshed(tenant, "rt-1", "rt-x", 900, 64999),
    ]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """Both tenants have a detected reuse, an order, an alert; keys of each."""
    with TestClient(create_app(Settings(database_url=sqlite_url(tmp_path)))) as client:
        app = client.app
        keys = {
            "acme": bearer(mint_key(app, tenant="acme", role="responder")),  # type: ignore[arg-type]
            "beta": bearer(mint_key(app, tenant="beta", role="admin")),  # type: ignore[arg-type]
            "global": bearer(mint_key(app)),  # type: ignore[arg-type]
        }
        for tenant in ("acme", "beta"):
            r = client.post("/v1/events?wait=true", json=reuse(tenant), headers=keys["global"])
            assert r.json()["detections"] == 1, r.text
        yield client, keys


def test_lists_show_only_the_callers_tenant(
    world: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = world
    for path in ("/v1/detections", "/v1/orders"):
        both = client.get(path, headers=keys["global"]).json()["items"]
        assert {i["tenant"] for i in both} == {"acme", "beta"}
        mine = client.get(path, headers=keys["acme"]).json()["items"]
        assert {i["tenant"] for i in mine} == {"acme"}
        assert client.get(path, params={"tenant": "beta"}, headers=keys["acme"]).status_code == 404
    alerts = client.get("/v1/alerts", headers=keys["acme"]).json()
    assert alerts and {a["tenant"] for a in alerts} == {"acme"}
    assert (
        client.get("/v1/alerts", params={"tenant": "beta"}, headers=keys["acme"]).status_code == 404
    )
    entities = client.get("/v1/entities", headers=keys["acme"]).json()["items"]
    assert entities and {e["tenant"] for e in entities} == {"acme"}
    trail = client.get("/v1/audit", headers=keys["acme"]).json()
    assert trail and all(a["data"].get("tenant", "acme") == "acme" for a in trail)
    assert client.get("/v1/audit/verify", headers=keys["beta"]).status_code == 403


def test_another_tenants_objects_are_404(
    world: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = world
    beta = keys["beta"]
    [order] = client.get("/v1/orders", headers=beta).json()["items"]
    [detection] = client.get("/v1/detections", headers=beta).json()["items"]
    [alert] = client.get("/v1/alerts", headers=beta).json()
    assert client.get(f"/v1/orders/{order['id']}", headers=beta).status_code == 200
    acme = keys["acme"]
    for path in (
        f"/v1/orders/{order['id']}",
        f"/v1/detections/{detection['id']}",
        f"/v1/alerts/{alert['id']}",
        f"/v1/entities/{detection['entity_key']}",
        "/v1/families/fam-1?tenant=beta",
    ):
        r = client.get(path, headers=acme)
        assert r.status_code == 404, path
    # the same family id in acme is acme's own
    assert client.get("/v1/families/fam-1", headers=acme).json()["tenant"] == "acme"
    r = client.post(f"/v1/alerts/{alert['id']}/ack", json={}, headers=acme)
    assert r.status_code == 404
    thrown = client.post(
        "/v1/kill-switches",
        json={"kind": "user", "value": "jane", "reason": "test"},
        headers=beta,
    ).json()["kill_switch"]
    r = client.post(
        f"/v1/kill-switches/{thrown['id']}/release", json={"reason": "not mine"}, headers=acme
    )
    assert r.status_code == 404
    r = client.post(
        "/v1/kill-switches",
        json={"kind": "user", "value": "jane", "tenant": "beta", "reason": "x"},
        headers=acme,
    )
    assert r.status_code == 404
    assert client.get("/v1/kill-switches", headers=acme).json() == []
    r = client.post("/v1/check", json={"tenant": "beta", "user": "jane"}, headers=acme)
    assert r.status_code == 404
    assert client.post("/v1/check", json={"user": "jane"}, headers=beta).json()["allow"] is False
    assert client.post("/v1/check", json={"user": "jane"}, headers=acme).json()["allow"] is True
    beta_key = client.get("/v1/keys", headers=beta).json()[0]["id"]
    assert client.delete(f"/v1/keys/{beta_key}", headers=keys["acme"]).status_code == 403
    acme_admin = bearer(mint_key(client.app, tenant="acme"))  # type: ignore[arg-type]
    assert client.delete(f"/v1/keys/{beta_key}", headers=acme_admin).status_code == 404


def test_events_of_another_tenant_are_rejected_one_by_one(
    world: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = world
    mixed = [
        {"time": 1_800_000_000, "tenant": "acme", "action": "token.used", "user": "u"},
        {"time": 1_800_000_001, "tenant": "beta", "action": "token.used", "user": "u"},
        {"time": 1_800_000_002, "action": "token.used", "user": "u"},  # no tenant: the key's
    ]
    ingest = bearer(mint_key(client.app, tenant="acme", scopes=["ingest"]))  # type: ignore[arg-type]
    r = client.post("/v1/events", json=mixed, headers=ingest)
    assert r.status_code == 202
    assert r.json()["accepted"] == 2
    assert r.json()["rejected"] == [
        {"index": 1, "reason": "tenant 'beta' is not the tenant of this credential"}
    ]
    only_beta = client.post("/v1/events", json=[mixed[1]], headers=ingest)
    assert only_beta.status_code == 422
    r = client.post("/v1/events?tenant=beta", json=[mixed[0]], headers=ingest)
    assert r.status_code == 404
    # an all-tenants credential writes into any tenant
    assert client.post("/v1/events", json=mixed[:2], headers=keys["global"]).json()["accepted"] == 2


def test_hec_takes_an_ingest_key_of_one_tenant(
    world: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = world
    key = mint_key(client.app, tenant="acme", scopes=["ingest"])  # type: ignore[arg-type]
    record = {"time": 1_800_000_000, "action": "token.used", "user": "hec-user"}
    body = b"".join(
        orjson.dumps({"event": {**record, "tenant": t}, "sourcetype": "tokenwarden"})
        for t in ("acme", "beta")
    )
    r = client.post(
        "/services/collector/event", content=body, headers={"Authorization": f"Splunk {key}"}
    )
    assert (r.status_code, r.json()["code"]) == (200, 0)
    rejected = client.get("/v1/rejected", headers=keys["global"]).json()["records"]
    assert any("not this token's tenant" in r["reason"] for r in rejected)
    # an all-tenants key cannot say which tenant HEC events are: refused, HEC-shaped
    wide = keys["global"]["Authorization"].removeprefix("Bearer ")
    r = client.post(
        "/services/collector/event", content=body, headers={"Authorization": f"Splunk {wide}"}
    )
    assert (r.status_code, r.json()["code"]) == (403, 4)
