"""The admin API's views: paging, the family chain, entities, the policy with its dry-run
toggle and counts, readiness; and the ``keys`` command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from revocation.order import Mode
from tests.credentials import authorize, bearer
from tests.tokenwarden.auth_fixtures import sqlite_url
from tokenwarden.app import create_app
from tokenwarden.cli import app as cli
from tokenwarden.services import build_services, refresh_policy
from tokenwarden.settings import Settings


def refreshed(parent: str, child: str, at: int, asn: int = 64500, fam: str = "fam-1") -> Any:
    return {
        "id": f"evt-{fam}-{parent}-{child}",
        "time": 1_800_000_000 + at,
        "tenant": "acme",
        "action": "token.refreshed",
        "user": "jane",
        "agent": "crm",
        "audience": "https://api.example",
        "token": {"parent_id": parent, "id": child, "family_id": fam, "type": "refresh_token"},
        "source": {"ip": "203.0.113.5", "asn": asn},
    }


def used(i: int, scope: str = "leads:read") -> Any:
    return {
        "id": f"use-{i}",
        "time": 1_800_000_000 + i,
        "tenant": "acme",
        "action": "token.used",
        "user": "jane",
        "agent": "crm",
        "audience": "https://api.example",
        "scopes": [scope],
        "token": {"id": f"at-{i}", "family_id": "fam-1", "type": "access_token"},
        "source": {"ip": "203.0.113.5", "asn": 64500},
    }


def reuse(fam: str) -> list[Any]:
    return [
        refreshed("rt-0", "rt-1", 0, fam=fam),
        refreshed("rt-1", "rt-2", 600, fam=fam),
        refreshed("rt-1", "rt-x", 900, 64999, fam=fam),
    ]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=sqlite_url(tmp_path)))) as c:
        authorize(c)
        yield c


def test_detections_page_with_a_cursor(client: TestClient) -> None:
    for n in range(5):
        client.post("/v1/events?wait=true", json=reuse(f"fam-{n}"))
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/detections", params=params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    first = client.get("/v1/detections", params={"limit": 1}).json()["items"][0]
    assert set(first) >= {"id", "time", "tenant", "detector", "severity", "entity_key"}
    assert {"family_id", "reason"} <= set(first)
    only = client.get("/v1/detections", params={"family_id": "fam-3"}).json()["items"]
    assert [d["family_id"] for d in only] == ["fam-3"]
    none = client.get("/v1/detections", params={"severity": "info"}).json()["items"]
    assert none == []
    r = client.get("/v1/detections", params={"cursor": "not-a-cursor"})
    assert (r.status_code, r.json()["error"]) == (422, "invalid_cursor")
    orders = client.get("/v1/orders", params={"limit": 3}).json()
    assert len(orders["items"]) == 3 and orders["next_cursor"]
    assert {"id", "status", "target", "deliveries"} <= set(orders["items"][0])


def test_the_family_chain_marks_the_reused_token(client: TestClient) -> None:
    client.post("/v1/events?wait=true", json=reuse("fam-1"))
    family = client.get("/v1/families/fam-1").json()
    assert family["state"] == "revoked"
    chain = {t["token_id"]: t for t in family["chain"]}
    assert chain["rt-1"]["reused"] is True
    assert chain["rt-1"]["consumed_at"] is not None
    assert [t for t, v in chain.items() if v["reused"]] == ["rt-1"]
    assert chain["rt-x"]["parent_id"] == "rt-1" and chain["rt-x"]["consumed_at"] is None
    assert family["detections"][0]["detector"] == "refresh_reuse"
    assert family["orders"][0]["target"]["value"] == "fam-1"


def test_a_family_whose_id_has_slashes(client: TestClient) -> None:
    """IdPs name families by paths or URIs (``okta/oar…/grant``): the route takes them."""
    client.post("/v1/events?wait=true", json=reuse("okta/oar1/grant"))
    family = client.get("/v1/families/okta/oar1/grant").json()
    assert family["family_id"] == "okta/oar1/grant" and family["state"] == "revoked"
    assert client.get("/v1/families/okta/oar1").status_code == 404


def test_an_entity_page(client: TestClient) -> None:
    client.post("/v1/events?wait=true", json=[used(i) for i in range(30)] + [used(31, "admin")])
    listed = client.get("/v1/entities", params={"q": "jane"}).json()["items"]
    key = "acme/jane/crm/https://api.example"
    assert key in [e["entity_key"] for e in listed]
    page = client.get(f"/v1/entities/{key}").json()
    assert (page["entity_key"], page["tenant"], page["user"]) == (key, "acme", "jane")
    assert {"risk", "baselines", "rate", "scopes", "networks", "events", "detections"} <= set(page)
    assert {"volume", "scope_drift", "destination"} <= set(page["baselines"])
    assert page["baselines"]["destination"]["last_network"] == "as64500"
    scopes = {s["scope"]: s for s in page["scopes"]}
    assert scopes["leads:read"]["count"] >= 30 and scopes["leads:read"]["last_seen"]
    assert page["networks"][0]["network"] == "as64500"
    assert len(page["events"]) == 31 and page["events"][0]["id"] == "use-31"
    assert sum(c for _, c in page["rate"]["observed"]) == 31
    assert all(isinstance(e["anomalous"], bool) for e in page["events"])
    assert client.get("/v1/entities/acme/nobody/x/-").status_code == 404


def test_policy_view_toggle_and_update(client: TestClient) -> None:
    policy = client.get("/v1/policy").json()
    rules = {r["name"]: r for r in policy["rules"]}
    name = "refresh-reuse-revokes-family"
    assert rules[name]["mode"] == "enforce" and policy["source"] == "settings"
    r = client.put(f"/v1/policy/rules/{name}/mode", json={"mode": "dry_run"})
    assert r.status_code == 200
    client.post("/v1/events?wait=true", json=reuse("fam-7"))
    after = {r["name"]: r for r in client.get("/v1/policy").json()["rules"]}
    assert after[name]["mode"] == "dry_run"
    assert after[name]["would_have"]["families"] == 1  # the running pipeline took it
    assert client.post("/v1/check", json={"family_id": "fam-7"}).json()["allow"] is True
    bad = client.put("/v1/policy", json={"rules": [{"name": "x", "detector": "d"}]})
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_policy")
    assert "action is required" in bad.json()["detail"]
    assert client.put("/v1/policy/rules/nope/mode", json={"mode": "enforce"}).status_code == 404
    back = client.put("/v1/policy", json={"rules": None, "modes": {}})
    assert back.status_code == 200 and back.json()["source"] == "api"
    trail = client.get("/v1/audit", params={"kind": "policy.updated"}).json()
    assert len(trail) == 2


def test_a_stored_policy_outlives_a_restart(tmp_path: Path) -> None:
    settings = Settings(database_url=sqlite_url(tmp_path))
    name = "refresh-reuse-revokes-family"
    with TestClient(create_app(settings)) as c:
        authorize(c)
        c.put(f"/v1/policy/rules/{name}/mode", json={"mode": "dry_run"})
    with TestClient(create_app(settings)) as c:
        authorize(c)
        rules = {r["name"]: r for r in c.get("/v1/policy").json()["rules"]}
        assert rules[name]["mode"] == "dry_run"


def test_a_process_that_did_not_take_the_put_follows_the_stored_policy(tmp_path: Path) -> None:
    """What a Kafka worker does every ``policy_refresh_seconds``: ``refresh_policy``
    hands over the stored policy once after it changed, and nothing while it stays."""
    settings = Settings(database_url=sqlite_url(tmp_path))
    name = "refresh-reuse-revokes-family"
    with TestClient(create_app(settings)) as c:
        authorize(c)
        worker = build_services(settings)  # started before the PUT: the configured policy
        assert refresh_policy(worker) is None
        c.put(f"/v1/policy/rules/{name}/mode", json={"mode": "dry_run"})
        policy = refresh_policy(worker)
        assert policy is not None
        assert {r.name: r.mode for r in policy.rules}[name] == Mode.DRY_RUN
        assert refresh_policy(worker) is None  # unchanged since
        # a stored policy that no longer validates is refused once, the current one stays
        with worker.db.begin() as conn:
            conn.execute(sa.text("UPDATE policy_config SET rules = :r"), {"r": '[{"name": 1}]'})
        assert refresh_policy(worker) is None
        assert worker.policy_source is not None and worker.policy_source.rules == [{"name": 1}]
        assert refresh_policy(worker) is None
        r = c.put("/v1/policy", json={"rules": None, "modes": {}})  # the defaults
        assert r.status_code == 200, r.text
        policy = refresh_policy(worker)
        assert policy is not None
        assert {r.name: r.mode for r in policy.rules}[name] == Mode.ENFORCE
        worker.db.dispose()


def test_a_replica_shows_the_policy_another_one_stored(tmp_path: Path) -> None:
    settings = Settings(database_url=sqlite_url(tmp_path))
    name = "refresh-reuse-revokes-family"
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        authorize(a)
        authorize(b)
        assert {r["name"]: r["mode"] for r in b.get("/v1/policy").json()["rules"]}[name] == (
            "enforce"
        )
        r = a.put(f"/v1/policy/rules/{name}/mode", json={"mode": "dry_run"})
        assert r.status_code == 200, r.text
        seen = b.get("/v1/policy").json()
        assert {r["name"]: r["mode"] for r in seen["rules"]}[name] == "dry_run"
        # and runs it: the replica's own pipeline now has the rule in dry run
        services = b.app.state.services  # type: ignore[attr-defined]
        assert {r.name: r.mode for r in services.stages.policy.rules}[name] == Mode.DRY_RUN


@pytest.mark.parametrize("interval", [1e-9, 3600.0])
def test_a_replicas_pipeline_runs_the_policy_another_one_stored(
    tmp_path: Path, interval: float
) -> None:
    """Nobody asks replica b about its policy: its embedded pipeline looks for a stored one
    itself before a batch, once ``policy_refresh_seconds`` passed (an hour: not yet)."""
    settings = Settings(database_url=sqlite_url(tmp_path), policy_refresh_seconds=interval)
    name = "refresh-reuse-revokes-family"
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        authorize(a)
        authorize(b)
        r = a.put(f"/v1/policy/rules/{name}/mode", json={"mode": "dry_run"})
        assert r.status_code == 200, r.text
        r = b.post("/v1/events?wait=true", json=reuse("fam-r"))
        assert (r.status_code, r.json()["orders"]) == (202, 1), r.text
        (order,) = b.get("/v1/orders").json()["items"]
        assert order["rule"] == name
        if interval < 1:
            assert order["mode"] == "dry_run"
            assert b.post("/v1/check", json={"family_id": "fam-r"}).json()["allow"] is True
        else:  # the replica still runs the policy it started with
            assert order["mode"] == "enforce"
            assert b.post("/v1/check", json={"family_id": "fam-r"}).json()["allow"] is False


def test_policy_needs_an_admin_of_every_tenant(client: TestClient) -> None:
    made = client.post("/v1/keys", json={"tenant": "acme", "scopes": ["admin"]}).json()
    r = client.put("/v1/policy", json={"modes": {}}, headers=bearer(made["key"]))
    assert r.status_code == 403


def test_readyz_and_transmitters(client: TestClient, tmp_path: Path) -> None:
    r = client.get("/readyz", headers={"Authorization": ""})
    assert (r.status_code, r.json()) == (200, {"status": "ready", "checks": {"database": "ok"}})
    assert client.get("/v1/ssf/transmitters").json() == []
    settings = Settings.model_validate(
        {
            "database_url": sqlite_url(tmp_path, "r.db"),
            "revocation": {
                "adapters": [{"type": "redis", "url": "redis://127.0.0.1:1/0", "prefix": "x:"}]
            },
        }
    )
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"] == {"database": "ok", "redis:redis": "fail"}
        assert "127.0.0.1" not in r.text


def test_keys_cli_creates_lists_and_revokes(tmp_path: Path, monkeypatch: Any) -> None:
    url = sqlite_url(tmp_path, "cli.db")
    monkeypatch.setenv("TOKENWARDEN_DATABASE_URL", url)
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "--tenant", "acme", "--scope", "ingest"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("twk_")
    key_id = key.split("_")[1]
    listed = runner.invoke(cli, ["keys", "list"])
    assert key_id in listed.stdout and "acme" in listed.stdout and key not in listed.stdout
    with sa.create_engine(url).connect() as conn:
        hashes = conn.execute(sa.text("SELECT secret_hash FROM api_keys")).scalars().all()
    assert hashes and key not in hashes
    bad = runner.invoke(cli, ["keys", "create", "--scope", "ingest"])
    assert bad.exit_code == 2
    wide = runner.invoke(cli, ["keys", "create", "--global", "--scope", "ingest"])
    assert wide.exit_code == 2 and "only an admin key" in wide.output
    gone = runner.invoke(cli, ["keys", "revoke", key_id])
    assert gone.exit_code == 0 and "revoked" in gone.stdout
    assert key_id not in runner.invoke(cli, ["keys", "list"]).stdout
    assert key_id in runner.invoke(cli, ["keys", "list", "--all"]).stdout
    assert runner.invoke(cli, ["keys", "revoke", "nope"]).exit_code == 1
