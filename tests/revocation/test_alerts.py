"""On-call alerts: one per entity per cool-down with a count, a rate limit per tenant, the
evidence and how to release in the payload, Slack format, acknowledgement."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from pydantic import SecretStr

from detectors.detection import Detection, Severity
from revocation import Action, Mode, TargetKind, store
from revocation.alerts import AlertSink, AlertSinkConfig, render_json, render_slack
from revocation.routing import AlertPolicy
from revocation.signing import verify_signature
from revocation.store.alerts import alert_context
from revocation.tables import alerts, audit_log, outbox
from revocation.txn import writing
from tests.revocation.fakes import Clock, dispatcher, routing
from tests.revocation.helpers import at, chain, order, rows

NOW = at(1000)


def with_sinks(**kw: Any) -> Any:
    return routing(alerts=AlertPolicy(sinks=("oncall",), **kw))


def alert_rows(engine: sa.Engine) -> list[Any]:
    return rows(engine, sa.select(alerts).order_by(alerts.c.opened_at, alerts.c.id))


def test_an_enforced_order_opens_an_alert_sent_to_every_sink(engine: sa.Engine) -> None:
    o = order(TargetKind.FAMILY, "fam-1")
    store.execute_orders(engine, orders=[o], now=NOW, routing=with_sinks())
    (a,) = alert_rows(engine)
    assert (a.id, a.entity, a.status, a.count, a.order_id) == (
        "al-" + o.id[4:],
        "acme/family/fam-1",
        "open",
        1,
        o.id,
    )
    sent = rows(engine, sa.select(outbox).where(outbox.c.purpose == "alert"))
    assert [(e.adapter, e.alert_id, e.order_id) for e in sent] == [("oncall", a.id, o.id)]


def test_dry_run_and_release_orders_open_no_alert(engine: sa.Engine) -> None:
    dry = order(TargetKind.FAMILY, "fam-1", mode=Mode.DRY_RUN)
    rel = order(TargetKind.USER, "jane", action=Action.RELEASE)
    store.execute_orders(engine, orders=[dry, rel], now=NOW, routing=with_sinks())
    assert alert_rows(engine) == []


def test_a_storm_on_one_entity_is_one_alert_with_a_count(engine: sa.Engine) -> None:
    r = with_sinks(cooldown=timedelta(minutes=5))
    causes = [f"signal:evt-{i}" for i in range(5)]
    first = [order(TargetKind.USER, "jane", action=Action.KILL_SWITCH, cause=c) for c in causes[:3]]
    store.execute_orders(engine, orders=first, now=NOW, routing=r)
    later = [order(TargetKind.USER, "jane", action=Action.KILL_SWITCH, cause=c) for c in causes[3:]]
    store.execute_orders(engine, orders=later, now=NOW + timedelta(minutes=4), routing=r)
    (a,) = alert_rows(engine)
    assert (a.count, a.last_order_id, a.last_at) == (5, later[-1].id, NOW + timedelta(minutes=4))
    assert len(rows(engine, sa.select(outbox).where(outbox.c.purpose == "alert"))) == 1
    folded = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "alert.folded"))
    assert len(folded) == 4

    # after the cool-down, the next order on the entity opens a new alert
    again = order(TargetKind.USER, "jane", action=Action.KILL_SWITCH, cause="signal:evt-9")
    store.execute_orders(engine, orders=[again], now=NOW + timedelta(minutes=6), routing=r)
    assert [x.count for x in alert_rows(engine)] == [5, 1]
    with engine.connect() as conn:
        ctx = alert_context(conn, alert_id=alert_rows(engine)[1].id)
    assert ctx is not None
    assert ctx.previous_count == 5


def test_alerts_beyond_the_tenant_budget_are_recorded_but_held_back(engine: sa.Engine) -> None:
    r = with_sinks(max_per_cooldown=2)
    storm = [order(TargetKind.FAMILY, f"fam-{i}") for i in range(5)]
    store.execute_orders(engine, orders=storm, now=NOW, routing=r)
    assert sorted(a.status for a in alert_rows(engine)) == ["open"] * 2 + ["rate_limited"] * 3
    assert len(rows(engine, sa.select(outbox).where(outbox.c.purpose == "alert"))) == 2
    # another tenant has its own budget
    store.execute_orders(
        engine, orders=[order(TargetKind.FAMILY, "fam-1", tenant="globex")], now=NOW, routing=r
    )
    assert [a.status for a in alert_rows(engine) if a.tenant == "globex"] == ["open"]
    # once the cool-down passed, the next alert sent says how many were held back
    nxt = order(TargetKind.FAMILY, "fam-new")
    store.execute_orders(engine, orders=[nxt], now=NOW + timedelta(minutes=6), routing=r)
    with engine.connect() as conn:
        ctx = alert_context(conn, alert_id="al-" + nxt.id[4:])
    assert ctx is not None
    assert ctx.rate_limited_before == 3


def _detection() -> Detection:
    return Detection(
        id="det-1",
        detector="refresh_reuse",
        entity="acme/family/fam-1",
        tenant="acme",
        score=1.0,
        severity=Severity.CRITICAL,
        reason="rotated refresh token rt-2 presented again from as64999",
        evidence={"presented_token": "rt-2", "network": "as64999", "generation_gap": 2},
        event_ids=("evt-7", "evt-9"),
        time=NOW,
        family_id="fam-1",
    )


def _context(engine: sa.Engine, o: Any) -> Any:
    with writing(engine) as conn:
        store.save_detections(conn, detections=[_detection()])
        store.record_tokens(conn, events=chain("fam-1", 3), now=NOW)
    store.execute_orders(engine, orders=[o], now=NOW, routing=with_sinks())
    (a,) = alert_rows(engine)
    with engine.connect() as conn:
        return alert_context(conn, alert_id=a.id)


def test_the_alert_carries_what_why_evidence_rule_and_how_to_release(engine: sa.Engine) -> None:
    o = order(TargetKind.FAMILY, "fam-1").model_copy(update={"detection_ids": ("det-1",)})
    doc = render_json(_context(engine, o))
    assert doc["order"]["target"] == {"kind": "family", "tenant": "acme", "value": "fam-1"}
    assert doc["order"]["rule"] == "test-rule"
    assert doc["order"]["affected"] == {"families": 1, "tokens": 3}
    (det,) = doc["detections"]
    assert det["reason"].startswith("rotated refresh token rt-2")
    assert det["evidence"]["generation_gap"] == 2
    assert doc["evidence_event_ids"] == ["evt-7", "evt-9"]
    assert "dry_run" in doc["release"]["note"]
    assert doc["acknowledge"]["cli"] == f"tokenwarden alerts ack {doc['alert_id']}"
    assert "revoked family fam-1 (1 families, 3 tokens)" in doc["summary"]


def test_a_kill_switch_alert_says_exactly_how_to_release(engine: sa.Engine) -> None:
    o = order(TargetKind.USER, "jane@acme.example", action=Action.KILL_SWITCH)
    doc = render_json(_context(engine, o))
    ks = o.kill_switch_thrown
    assert doc["kill_switch"] == {"id": ks, "released_at": None}
    assert doc["release"]["cli"] == f'tokenwarden release {ks} --reason "<why it is safe>"'
    assert doc["release"]["api"].startswith(f"POST /v1/kill-switches/{ks}/release")


def test_the_slack_format_is_an_incoming_webhook_message(engine: sa.Engine) -> None:
    o = order(TargetKind.FAMILY, "fam-1").model_copy(update={"detection_ids": ("det-1",)})
    msg = render_slack(_context(engine, o))
    assert msg["text"].startswith("[acme] revoked family fam-1")
    assert [b["type"] for b in msg["blocks"]] == ["section", "section", "context"]
    body = msg["blocks"][0]["text"]["text"]
    assert "refresh_reuse (critical, 1)" in body
    assert "network=as64999" in body
    assert "`evt-7`" in body


def test_the_dispatcher_sends_alerts_signed_to_the_sink(engine: sa.Engine) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    clock = Clock()
    o = order(TargetKind.FAMILY, "fam-1").model_copy(update={"detection_ids": ("det-1",)})
    _context(engine, o)
    secret = "alert-secret-0123456789"
    cfg = AlertSinkConfig(
        name="oncall", url="https://oncall.example/hook", format="json", secret=SecretStr(secret)
    )

    async def run() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await dispatcher(
                engine, clock, sinks={"oncall": AlertSink(cfg, http)}
            ).run_once()

    report = asyncio.run(run())
    (request,) = seen
    assert report.delivered == [request.headers["idempotency-key"]]
    verify_signature(
        secret.encode(),
        request.headers["tokenwarden-signature"],
        request.content,
        now=clock.now.timestamp(),
    )
    assert orjson.loads(request.content)["type"] == "tokenwarden.alert"
    sent = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "alert.sent"))
    assert [a.ref for a in sent] == ["al-" + o.id[4:]]


def test_acknowledging_records_who_once_and_is_audited(engine: sa.Engine) -> None:
    store.execute_orders(
        engine, orders=[order(TargetKind.FAMILY, "f")], now=NOW, routing=with_sinks()
    )
    (a,) = alert_rows(engine)
    with writing(engine) as conn:
        acked = store.acknowledge(conn, alert_id=a.id, actor="cli:alice", note="on it", now=NOW)
        again = store.acknowledge(conn, alert_id=a.id, actor="cli:bob", now=at(2000))
        missing = store.acknowledge(conn, alert_id="al-nope", actor="cli:bob", now=NOW)
    assert acked is not None
    assert again is not None
    assert (acked.acknowledged_by, acked.ack_note, acked.acknowledged_at) == (
        "cli:alice",
        "on it",
        NOW,
    )
    assert again.acknowledged_by == "cli:alice"
    assert missing is None
    trail = rows(engine, sa.select(audit_log).where(audit_log.c.kind == "alert.acknowledged"))
    assert [(t.actor, t.ref) for t in trail] == [("cli:alice", a.id)]
    with engine.connect() as conn:
        assert store.list_alerts(conn, unacknowledged=True) == []
