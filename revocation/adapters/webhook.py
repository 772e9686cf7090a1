"""``webhook``: a signed POST to a token broker or vault that has no standard revocation API.

The body is JSON: the order (what, why, which rule, who), the families and token ids it
covers now and the kill switches active on its target. Headers: ``Tokenwarden-Signature``
(HMAC-SHA256 over timestamp + body, see ``revocation.signing`` for the receiver's side and
the replay window) and ``Idempotency-Key`` (the outbox entry id: the same on every retry,
so the receiver applies each delivery once in effect). A 2xx is success; 408, 425, 429 and
5xx are retried (honouring ``Retry-After``); any other status is a permanent failure that
is still retried at the longest backoff, and surfaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from revocation.adapters.config import parse
from revocation.adapters.http import raise_for, transport_error
from revocation.delivery import AdapterDeps, AdapterPlugin, Delivery
from revocation.order import Action
from revocation.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign


class WebhookConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://")
    secret: SecretStr = Field(description="HMAC key shared with the receiver (>= 16 bytes)")
    timeout_seconds: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    max_tokens: int = Field(default=1000, ge=0, description="token ids listed per delivery")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < 16:
            raise ValueError("secret must be at least 16 bytes")
        return value


def payload(delivery: Delivery, *, now: datetime, max_tokens: int = 1000) -> dict[str, Any]:
    """The JSON body of a revocation delivery."""
    order, scope = delivery.order, delivery.scope
    return {
        "type": "tokenwarden.revocation",
        "delivery_id": delivery.id,
        "attempt": delivery.attempt,
        "sent_at": now.isoformat(),
        "order": {
            "id": order.id,
            "idempotency_key": order.idempotency_key,
            "action": order.action.value,
            "target": order.target.model_dump(mode="json"),
            "mode": order.mode.value,
            "rule": order.rule,
            "reason": order.reason,
            "actor": order.actor,
            "detection_ids": list(order.detection_ids),
            "kill_switch_id": order.kill_switch_id,
            "created_at": order.created_at.isoformat(),
        },
        "families": [
            {
                "tenant": f.tenant,
                "family_id": f.family_id,
                "user": f.user,
                "agent": f.agent,
                "client_id": f.client_id,
                "session_id": f.session_id,
            }
            for f in scope.families
        ],
        "tokens": [
            {"token_id": t.token_id, "family_id": t.family_id, "type": t.type}
            for t in scope.tokens[:max_tokens]
        ],
        "kill_switches_active": [
            {"id": s.id, "kind": s.kind, "value": s.value, "reason": s.reason}
            for s in scope.switches
        ],
        "truncated": scope.truncated or len(scope.tokens) > max_tokens,
    }


class WebhookAdapter:
    """POSTs each delivery, signed, to one URL."""

    def __init__(self, name: str, config: WebhookConfig, http: httpx.AsyncClient) -> None:
        self.name = name
        self.config = config
        self.http = http

    async def deliver(self, delivery: Delivery, *, now: datetime) -> Mapping[str, Any]:
        body = orjson.dumps(payload(delivery, now=now, max_tokens=self.config.max_tokens))
        secret = self.config.secret.get_secret_value().encode()
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: delivery.id,
            SIGNATURE_HEADER: sign(secret, timestamp=int(now.timestamp()), body=body),
        }
        try:
            response = await self.http.post(
                self.config.url, content=body, headers=headers, timeout=self.config.timeout_seconds
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, what=f"webhook {self.config.url}") from exc
        raise_for(response, what=f"webhook {self.config.url}")
        return {"status": response.status_code}

    async def aclose(self) -> None:
        return None


def _build(name: str, config: Mapping[str, Any], deps: AdapterDeps) -> WebhookAdapter:
    return WebhookAdapter(name, parse(WebhookConfig, name, config), deps.http)


PLUGIN = AdapterPlugin(
    type="webhook",
    actions=frozenset({Action.REVOKE, Action.KILL_SWITCH, Action.RELEASE}),
    build=_build,
    description="signed JSON POST (HMAC-SHA256, Idempotency-Key) to a broker or vault",
)
