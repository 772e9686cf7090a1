"""On-call alerts: what was cut off, why, the evidence, and how to undo it.

An alert is rendered when it is delivered, from the store: the order (target, action,
rule, reason, who decided), the detections behind it (detector, severity, score, reason,
the numbers that fired, the evidence event ids), how many orders on the same entity were
folded into it (storm dedupe), how many alerts of the tenant were held back by the rate
limit, and how to release — for a kill switch the exact CLI command and API call; a
revoked family cannot be un-revoked (the holder re-authorizes), so the alert says how to
stop the rule instead.

Two formats: ``json`` (the document below, for an incident tool) and ``slack`` (an
incoming-webhook message: ``text`` plus Block Kit ``blocks``). Both are POSTed through the
injected HTTP client with the same signature and ``Idempotency-Key`` as webhook
deliveries (``revocation.signing``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from detectors.detection import Detection
from revocation.adapters.http import raise_for, transport_error
from revocation.delivery import SwitchRef
from revocation.order import Action, RevocationOrder
from revocation.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

MAX_EVIDENCE_EVENTS = 50


class AlertSinkConfig(BaseModel):
    """One alert destination (``[[revocation.alerts.sinks]]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(pattern=r"^https?://")
    format: Literal["json", "slack"] = "json"
    secret: SecretStr | None = Field(default=None, description="HMAC key for the signature")
    timeout_seconds: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertContext:
    """Everything an alert says, read from the store at delivery time."""

    alert_id: str
    tenant: str
    entity: str
    opened_at: datetime
    count: int
    order: RevocationOrder
    affected: Mapping[str, int] | None
    detections: Sequence[Detection]
    kill_switch: SwitchRef | None
    previous_count: int | None
    rate_limited_before: int
    acknowledged_by: str | None = None


def release_hint(ctx: AlertContext) -> dict[str, str]:
    """How to undo what the order did, for the human reading the alert."""
    order = ctx.order
    if order.action == Action.KILL_SWITCH:
        ks = ctx.kill_switch.id if ctx.kill_switch else order.kill_switch_thrown
        return {
            "kill_switch_id": ks,
            "cli": f'tokenwarden release {ks} --reason "<why it is safe>"',
            "api": f'POST /v1/kill-switches/{ks}/release {{"reason": "…", "actor": "…"}}',
        }
    if order.action == Action.REVOKE:
        return {
            "note": "a revoked family cannot be restored: the holder re-authorizes to get a "
            "new grant. To stop this rule acting, switch it to dry-run: "
            f'[policy.modes] "{order.rule or "<rule>"}" = "dry_run"',
        }
    return {"note": "nothing was cut off (alert only)"}


def render_json(ctx: AlertContext) -> dict[str, Any]:
    """The ``json`` alert document."""
    order = ctx.order
    events: list[str] = []
    for det in ctx.detections:
        events.extend(e for e in det.event_ids if e not in events)
    return {
        "type": "tokenwarden.alert",
        "alert_id": ctx.alert_id,
        "tenant": ctx.tenant,
        "entity": ctx.entity,
        "opened_at": ctx.opened_at.isoformat(),
        "count": ctx.count,
        "previous_alert_count": ctx.previous_count,
        "rate_limited_since_last": ctx.rate_limited_before,
        "summary": summary(ctx),
        "order": {
            "id": order.id,
            "action": order.action.value,
            "target": order.target.model_dump(mode="json"),
            "mode": order.mode.value,
            "rule": order.rule,
            "reason": order.reason,
            "actor": order.actor,
            "created_at": order.created_at.isoformat(),
            "affected": dict(ctx.affected or {}),
        },
        "detections": [
            {
                "id": d.id,
                "detector": d.detector,
                "severity": d.severity.value,
                "score": d.score,
                "reason": d.reason,
                "evidence": d.evidence,
                "event_ids": list(d.event_ids),
                "time": d.time.isoformat(),
            }
            for d in ctx.detections
        ],
        "evidence_event_ids": events[:MAX_EVIDENCE_EVENTS],
        "kill_switch": (
            {"id": ctx.kill_switch.id, "released_at": _iso(ctx.kill_switch.released_at)}
            if ctx.kill_switch
            else None
        ),
        "release": release_hint(ctx),
        "acknowledge": {
            "cli": f"tokenwarden alerts ack {ctx.alert_id}",
            "api": f'POST /v1/alerts/{ctx.alert_id}/ack {{"actor": "…"}}',
        },
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def summary(ctx: AlertContext) -> str:
    order = ctx.order
    verb = {
        Action.REVOKE: "revoked",
        Action.KILL_SWITCH: "kill switch thrown on",
        Action.ALERT_ONLY: "alert on",
        Action.RELEASE: "released",
    }[order.action]
    text = f"[{ctx.tenant}] {verb} {order.target.kind.value} {order.target.value}"
    affected = ctx.affected or {}
    if affected.get("families") or affected.get("tokens"):
        text += f" ({affected.get('families', 0)} families, {affected.get('tokens', 0)} tokens)"
    text += f" — {order.reason}"
    if ctx.count > 1:
        text += f" [{ctx.count} orders on this entity in this alert]"
    return text


def render_slack(ctx: AlertContext) -> dict[str, Any]:
    """A Slack incoming-webhook message (``text`` fallback plus Block Kit ``blocks``)."""
    doc = render_json(ctx)
    lines = [f"*{summary(ctx)}*", f"rule `{ctx.order.rule or 'manual'}` · order `{ctx.order.id}`"]
    for det in ctx.detections[:5]:
        numbers = ", ".join(f"{k}={v}" for k, v in list(det.evidence.items())[:6])
        lines.append(f"• {det.detector} ({det.severity.value}, {det.score:g}): {det.reason}")
        if numbers:
            lines.append(f"   {numbers}")
    if doc["evidence_event_ids"]:
        lines.append("events: " + ", ".join(f"`{e}`" for e in doc["evidence_event_ids"][:10]))
    release = doc["release"]
    how = release.get("cli") or release.get("note", "")
    extra = []
    if ctx.rate_limited_before:
        extra.append(f"{ctx.rate_limited_before} alerts held back by the rate limit")
    if ctx.previous_count and ctx.previous_count > 1:
        extra.append(f"previous alert on this entity covered {ctx.previous_count} orders")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*release:* `{how}`"}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"ack: `tokenwarden alerts ack {ctx.alert_id}`"},
                *({"type": "mrkdwn", "text": e} for e in extra),
            ],
        },
    ]
    return {"text": summary(ctx), "blocks": blocks}


class AlertSink:
    """POSTs rendered alerts to one URL."""

    def __init__(self, config: AlertSinkConfig, http: httpx.AsyncClient) -> None:
        self.name = config.name
        self.config = config
        self.http = http

    def body(self, ctx: AlertContext) -> bytes:
        doc = render_slack(ctx) if self.config.format == "slack" else render_json(ctx)
        return orjson.dumps(doc)

    async def send(
        self, ctx: AlertContext, *, delivery_id: str, now: datetime
    ) -> Mapping[str, Any]:
        body = self.body(ctx)
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: delivery_id,
        }
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value().encode()
            headers[SIGNATURE_HEADER] = sign(secret, timestamp=int(now.timestamp()), body=body)
        try:
            response = await self.http.post(
                self.config.url, content=body, headers=headers, timeout=self.config.timeout_seconds
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, what=f"alert sink {self.name}") from exc
        raise_for(response, what=f"alert sink {self.name}")
        return {"status": response.status_code, "format": self.config.format}
