"""The executor's admin API on the embedded service: manual orders with their deliveries,
kill switches and their release, alerts and acknowledgement, the audit trail, dry-run
summaries and /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.credentials import authorize
from tokenwarden.app import create_app
from tokenwarden.settings import Settings

ACTOR = {"X-Tokenwarden-Actor": "alice@acme"}


def refreshed(parent: str, child: str, at: int, asn: int = 64500) -> dict[str, Any]:
    return {
        "id": f"evt-{parent}-{child}",
        "time": 1_700_000_000 + at,
        "tenant": "acme",
        "action": "token.refreshed",
        "user": "jane@acme.example",
        "agent": "crm-followup",
        "client_id": "agent-crm",
        "token": {"parent_id": parent, "id": child, "family_id": "fam-1", "type": "refresh_token"},
        "source": {"ip": "203.0.113.5", "asn": asn},
    }


def settings_for(tmp_path: Path, **revocation: Any) -> Settings:
    return Settings.model_validate(
        {"database_url": f"sqlite:///{tmp_path / 'tw.db'}", "revocation": revocation}
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(tmp_path))) as c:
        authorize(c)
        yield c


def test_a_detected_reuse_shows_its_order_deliveries_alert_and_audit(client: TestClient) -> None:
    batch = [
        refreshed("rt-0", "rt-1", 0),
        refreshed("rt-1", "rt-2", 600),
        refreshed("rt-1", "rt-x", 900, 64999),
    ]
    assert client.post("/v1/events?wait=true", json=batch).json()["orders"] == 1
    [listed] = client.get("/v1/orders").json()["items"]
    order = client.get(f"/v1/orders/{listed['id']}").json()
    assert order["status"] == "done"
    assert order["actor"] == "policy"
    [store] = order["deliveries"]
    assert (store["adapter"], store["state"], store["attempts"]) == ("store", "delivered", 1)
    assert store["result"] == {"families": 1, "tokens": 4}
    [alert] = order["alerts"]
    assert (alert["entity"], alert["count"], alert["status"]) == ("acme/family/fam-1", 1, "open")
    kinds = [a["kind"] for a in order["audit"]]
    assert kinds == ["order.executed", "order.recorded"]  # newest first
    detection_rows = client.get("/v1/audit", params={"kind": "detection.recorded"}).json()
    assert [d["ref"] for d in detection_rows] == order["detection_ids"]
    assert client.get("/v1/orders/ord-nope").status_code == 404


def me(client: TestClient) -> str:
    """The audit trail's name for the client's key: ``key:<id>``."""
    return "key:" + client.headers["Authorization"].split("_")[1]


def test_manual_revoke_is_attributed_to_the_key_and_who_it_says_acts(client: TestClient) -> None:
    body = {
        "action": "revoke",
        "target": {"kind": "family", "tenant": "acme", "value": "fam-9"},
        "reason": "token leaked in a ticket",
    }
    r = client.post("/v1/orders", json=body, headers={**ACTOR, "Idempotency-Key": "req-1"})
    assert r.status_code == 201
    order = r.json()
    assert (order["actor"], order["rule"], order["status"]) == (
        f"{me(client)} as alice@acme",
        "manual",
        "done",
    )
    unnamed = client.post("/v1/orders", json=body).json()
    assert unnamed["actor"] == me(client)  # the authenticated key is always the actor
    assert order["deliveries"][0]["state"] == "delivered"
    again = client.post("/v1/orders", json=body, headers={**ACTOR, "Idempotency-Key": "req-1"})
    assert (again.status_code, again.json()["id"]) == (200, order["id"])
    check = client.post("/v1/check", json={"tenant": "acme", "family_id": "fam-9"}).json()
    assert (check["allow"], check["order_id"]) == (False, order["id"])
    bad = client.post("/v1/orders", json={**body, "action": "kill_switch"}, headers=ACTOR)
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid")
    assert "cannot kill_switch a family" in bad.json()["detail"]


def test_kill_then_release_through_the_api(client: TestClient) -> None:
    body = {
        "action": "kill_switch",
        "target": {"kind": "agent", "tenant": "acme", "value": "crm-followup"},
        "reason": "prompt injection suspected",
        "actor": "bob@acme",
    }
    order = client.post("/v1/orders", json=body).json()
    ks = order["kill_switch"]["id"]
    assert order["actor"] == f"{me(client)} as bob@acme"
    denied = client.post("/v1/check", json={"tenant": "acme", "agent": "crm-followup"}).json()
    assert (denied["allow"], denied["kill_switch_id"]) == (False, ks)
    [active] = client.get("/v1/kill-switches").json()
    assert active["id"] == ks

    r = client.post(f"/v1/kill-switches/{ks}/release", json={"reason": ""}, headers=ACTOR)
    assert r.status_code == 422  # a reason is required
    r = client.post(
        f"/v1/kill-switches/{ks}/release", json={"reason": "false positive"}, headers=ACTOR
    )
    assert r.status_code == 200
    release = r.json()
    assert (release["action"], release["kill_switch_id"], release["status"]) == (
        "release",
        ks,
        "done",
    )
    assert client.post("/v1/check", json={"tenant": "acme", "agent": "crm-followup"}).json()[
        "allow"
    ]
    assert client.get("/v1/kill-switches").json() == []
    trail = client.get("/v1/audit", params={"ref": ks}).json()
    assert [(a["kind"], a["actor"]) for a in trail] == [
        ("kill_switch.released", f"{me(client)} as alice@acme"),
        ("kill_switch.thrown", f"{me(client)} as bob@acme"),
    ]
    assert client.get(f"/v1/orders/{order['id']}").json()["status"] == "released"
    r = client.post(f"/v1/kill-switches/{ks}/release", json={"reason": "again"}, headers=ACTOR)
    assert (r.status_code, r.json()["error"]) == (409, "already_released")
    r = client.post("/v1/kill-switches/ks-nope/release", json={"reason": "x"}, headers=ACTOR)
    assert r.status_code == 404


def test_alerts_are_listed_rendered_and_acknowledged(client: TestClient) -> None:
    body = {
        "action": "kill_switch",
        "target": {"kind": "user", "tenant": "acme", "value": "jane@acme.example"},
        "reason": "account takeover",
    }
    client.post("/v1/orders", json=body, headers=ACTOR)
    [alert] = client.get("/v1/alerts", params={"unacknowledged": True}).json()
    doc = client.get(f"/v1/alerts/{alert['id']}").json()
    assert doc["release"]["cli"].startswith("tokenwarden release ks-")
    r = client.post(f"/v1/alerts/{alert['id']}/ack", json={"note": "looking"}, headers=ACTOR)
    assert (r.json()["acknowledged_by"], r.json()["ack_note"]) == (
        f"{me(client)} as alice@acme",
        "looking",
    )
    assert client.get("/v1/alerts", params={"unacknowledged": True}).json() == []
    assert client.post("/v1/alerts/al-nope/ack", json={}, headers=ACTOR).status_code == 404


def test_audit_verify_over_the_api(client: TestClient) -> None:
    batch = [
        refreshed("rt-0", "rt-1", 0),
        refreshed("rt-1", "rt-2", 600),
        refreshed("rt-1", "rt-x", 900, 64999),
    ]
    client.post("/v1/events?wait=true", json=batch)
    report = client.get("/v1/audit/verify").json()
    assert report["ok"] is True
    assert report["rows"] == report["head_seq"] >= 4
    assert report["broken_seq"] is None


def test_dry_run_rules_report_what_they_would_have_revoked(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp_path / 'tw.db'}",
            "policy": {"modes": {"refresh-reuse-revokes-family": "dry_run"}},
        }
    )
    batch = [
        refreshed("rt-0", "rt-1", 0),
        refreshed("rt-1", "rt-2", 600),
        refreshed("rt-1", "rt-x", 900, 64999),
    ]
    with TestClient(create_app(settings)) as client:
        authorize(client)
        client.post("/v1/events?wait=true", json=batch)
        summary = client.get("/v1/orders/summary").json()
        assert (summary["orders"], summary["families"], summary["tokens"]) == (1, 1, 4)
        assert summary["summary"] == "1 dry_run orders would have revoked 1 families (4 tokens)"
        assert summary["by_rule"]["refresh-reuse-revokes-family"]["families"] == 1
        assert client.get("/v1/alerts").json() == []  # dry run: nobody is paged
        assert client.post("/v1/check", json={"tenant": "acme", "family_id": "fam-1"}).json()[
            "allow"
        ]


def test_metrics_expose_the_executor_series(client: TestClient) -> None:
    batch = [
        refreshed("rt-0", "rt-1", 0),
        refreshed("rt-1", "rt-2", 600),
        refreshed("rt-1", "rt-x", 900, 64999),
    ]
    client.post("/v1/events?wait=true", json=batch)
    client.post("/v1/check", json={"tenant": "acme", "family_id": "fam-1"})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for series in (
        "tokenwarden_detection_to_order_seconds_count 1.0",
        'tokenwarden_order_to_delivery_seconds_count{adapter="store",purpose="revoke"} 1.0',
        'tokenwarden_deliveries_total{adapter="store",purpose="revoke"} 1.0',
        'tokenwarden_circuit_breaker_state{adapter="store"} 0.0',
        'tokenwarden_checks_total{result="deny",source="database"} 1.0',
        "tokenwarden_orders_recorded_total 1.0",
    ):
        assert series in text, series
    assert "tokenwarden_outbox_depth" in text
