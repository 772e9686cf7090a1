"""``redis``: a denylist gateways read in well under a millisecond, plus a pub/sub channel.

Keys (``prefix`` defaults to ``tokenwarden:``; ``%`` and ``:`` inside a component are
percent-encoded, so components never run into each other)::

    <prefix>family:<tenant>:<family_id>     a revoked family        TTL: family lifetime
    <prefix>token:<tenant>:<token_id>       a revoked token id      TTL: what is left of
                                                                    its lifetime
    <prefix>kill:<tenant>:<kind>:<value>    an active kill switch   no TTL: until released
                                            (kind: user, agent, client, session, tenant,
                                            family, token, device)

Each value is compact JSON: the order id, the reason, and for a kill switch its id. A token
key lives only as long as the token could (``access_token_ttl_seconds`` /
``refresh_token_ttl_seconds`` after it was issued), a family key as long as a refresh token
of it could (``family_ttl_seconds``), so the denylist does not grow forever. A kill key is
set while a switch is active on the entity and deleted when the last one is released —
computed from the store at delivery time, so a late or repeated delivery converges.

Every delivery also publishes one JSON message on ``<prefix><channel>`` (default
``tokenwarden:revocations``) — ``{"type": "revoked" | "killed" | "released", "order_id",
"idempotency_key", "tenant", "target", "families", "tokens", "kill_switch", "at"}`` — so
gateways drop cached "allow" answers at once. The keys and the message go in one
MULTI/EXEC: a subscriber that hears the message finds the keys set. A redelivery publishes
again; subscribers dedupe on ``idempotency_key``.

``DenylistReader`` is ``/v1/check``'s Redis-first path: one MGET of every key the request
names. A hit is an answer (deny); a miss falls through to the store, which also knows what
the denylist cannot — a token first seen after its family was revoked, the families a
killed user holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from revocation.adapters.config import parse
from revocation.delivery import AdapterDeps, AdapterPlugin, Delivery, DeliveryError
from revocation.order import Action, TargetKind
from revocation.store.checks import CheckResult

_DAY = 86_400


class RedisConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^(rediss?|unix)://")
    prefix: str = "tokenwarden:"
    channel: str = "revocations"
    access_token_ttl_seconds: int = Field(default=3600, gt=0)
    refresh_token_ttl_seconds: int = Field(default=30 * _DAY, gt=0)
    family_ttl_seconds: int | None = Field(
        default=None, gt=0, description="default: refresh_token_ttl_seconds"
    )
    check: bool = Field(default=True, description="/v1/check reads this denylist first")
    check_timeout_seconds: float = Field(default=0.05, gt=0)
    socket_timeout_seconds: float = Field(default=5.0, gt=0)


def _part(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")


@dataclass(frozen=True, slots=True)
class DenylistKeys:
    """The key and channel names (see the module docstring)."""

    prefix: str = "tokenwarden:"
    channel_name: str = "revocations"

    def family(self, tenant: str, family_id: str) -> str:
        return f"{self.prefix}family:{_part(tenant)}:{_part(family_id)}"

    def token(self, tenant: str, token_id: str) -> str:
        return f"{self.prefix}token:{_part(tenant)}:{_part(token_id)}"

    def kill(self, tenant: str, kind: str, value: str) -> str:
        return f"{self.prefix}kill:{_part(tenant)}:{kind}:{_part(value)}"

    @property
    def channel(self) -> str:
        return self.prefix + self.channel_name


def _value(**fields: Any) -> bytes:
    return orjson.dumps({k: v for k, v in fields.items() if v is not None})


class RedisDenylist:
    """Writes the denylist and announces each change (an ``Adapter``)."""

    def __init__(self, name: str, config: RedisConfig, client: aioredis.Redis) -> None:
        self.name = name
        self.config = config
        self.client = client
        self.keys = DenylistKeys(config.prefix, config.channel)

    def _token_ttl(self, type_: str | None, issued_at: datetime, now: datetime) -> int:
        lifetime = (
            self.config.access_token_ttl_seconds
            if type_ in ("access_token", "id_token")
            else self.config.refresh_token_ttl_seconds
        )
        return int(lifetime - (now - issued_at).total_seconds())

    async def deliver(self, delivery: Delivery, *, now: datetime) -> Mapping[str, Any]:
        order, scope = delivery.order, delivery.scope
        tenant = order.target.tenant
        pipe = self.client.pipeline(transaction=True)
        result: dict[str, Any] = {}
        message: dict[str, Any] = {
            "order_id": order.id,
            "idempotency_key": order.idempotency_key,
            "tenant": tenant,
            "target": order.target.model_dump(mode="json"),
            "reason": order.reason,
            "at": now.isoformat(),
        }
        if order.action == Action.REVOKE:
            family_ttl = self.config.family_ttl_seconds or self.config.refresh_token_ttl_seconds
            fams = [f.family_id for f in scope.families]
            if order.target.kind == TargetKind.FAMILY and order.target.value not in fams:
                fams.insert(0, order.target.value)  # revoked before it was ever seen
            value = _value(order=order.id, reason=order.reason)
            for fam in fams:
                pipe.set(self.keys.family(tenant, fam), value, ex=family_ttl)
            toks: list[str] = []
            for tok in scope.tokens:
                ttl = self._token_ttl(tok.type, tok.issued_at, now)
                if ttl > 0:  # an expired token needs no entry
                    pipe.set(self.keys.token(tenant, tok.token_id), value, ex=ttl)
                    toks.append(tok.token_id)
            if order.target.kind == TargetKind.TOKEN and order.target.value not in toks:
                pipe.set(
                    self.keys.token(tenant, order.target.value),
                    value,
                    ex=self.config.refresh_token_ttl_seconds,
                )
                toks.append(order.target.value)
            result = {"families": len(fams), "tokens": len(toks)}
            message.update(type="revoked", families=fams[:1000], tokens=toks[:1000])
        else:  # kill switch or release: the key mirrors the switches active on the entity
            key = self.keys.kill(tenant, order.target.kind.value, order.target.value)
            if scope.switches:
                ks = scope.switches[0]
                pipe.set(key, _value(kill_switch=ks.id, order=ks.order_id, reason=ks.reason))
                result = {"kill": "set", "kill_switch": ks.id}
                message.update(type="killed", kill_switch=ks.id)
            else:
                pipe.delete(key)
                result = {"kill": "deleted"}
                message.update(type="released", kill_switch=order.kill_switch_id)
        pipe.publish(self.keys.channel, orjson.dumps(message))
        try:
            replies = await pipe.execute()
        except redis.RedisError as exc:
            raise DeliveryError(f"redis {self.config.url}: {type(exc).__name__}: {exc}") from exc
        result["subscribers"] = int(replies[-1])
        return result

    async def aclose(self) -> None:
        await self.client.aclose()


class DenylistReader:
    """``/v1/check``'s Redis-first lookup: ``acheck`` (the endpoint, on the event loop) or
    ``check`` (synchronous callers) return a denial on a hit and ``None`` on a miss."""

    def __init__(
        self, client: redis.Redis, keys: DenylistKeys, aclient: aioredis.Redis | None = None
    ) -> None:
        self.client = client
        self.aclient = aclient
        self.keys = keys

    async def acheck(self, *, tenant: str | None, **ids: str | None) -> CheckResult | None:
        if tenant is None:
            return None
        if self.aclient is None:
            raise RuntimeError("this reader has no asyncio client")
        wanted = self.keys_for(tenant=tenant, **ids)
        values = await self.aclient.mget([key for key, _, _ in wanted])
        return self._answer(wanted, values)

    async def aclose(self) -> None:
        self.client.close()
        if self.aclient is not None:
            await self.aclient.aclose()

    def keys_for(
        self,
        *,
        tenant: str,
        token_id: str | None = None,
        family_id: str | None = None,
        user: str | None = None,
        agent: str | None = None,
        client_id: str | None = None,
        session_id: str | None = None,
    ) -> list[tuple[str, str, str]]:
        """(key, kind, value) in the order a hit is reported."""
        k = self.keys
        out: list[tuple[str, str, str]] = []
        if token_id:
            out.append((k.token(tenant, token_id), "token", token_id))
        if family_id:
            out.append((k.family(tenant, family_id), "family", family_id))
        named: Sequence[tuple[TargetKind, str | None]] = (
            (TargetKind.TOKEN, token_id),
            (TargetKind.FAMILY, family_id),
            (TargetKind.USER, user),
            (TargetKind.AGENT, agent),
            (TargetKind.CLIENT, client_id),
            (TargetKind.SESSION, session_id),
            (TargetKind.TENANT, tenant),
        )
        for kind, value in named:
            if value:
                out.append((k.kill(tenant, kind.value, value), "kill:" + kind.value, value))
        return out

    def check(self, *, tenant: str | None, **ids: str | None) -> CheckResult | None:
        if tenant is None:
            return None  # keys are per tenant: ask the store
        wanted = self.keys_for(tenant=tenant, **ids)
        return self._answer(wanted, self.client.mget([key for key, _, _ in wanted]))

    @staticmethod
    def _answer(wanted: list[tuple[str, str, str]], values: list[Any]) -> CheckResult | None:
        for (_, kind, value), raw in zip(wanted, values, strict=True):
            if raw is None:
                continue
            data = orjson.loads(raw)
            reason = data.get("reason") or ""
            order_id = data.get("order")
            if kind.startswith("kill:"):
                ks_id = data.get("kill_switch")
                text = f"kill switch {ks_id} on {kind[5:]} {value}"
                return CheckResult(
                    allow=False,
                    reason=text + (f" ({reason})" if reason else ""),
                    order_id=order_id,
                    kill_switch_id=ks_id,
                )
            text = f"{kind} {value} revoked" + (f" by order {order_id}" if order_id else "")
            return CheckResult(
                allow=False, reason=text + (f" ({reason})" if reason else ""), order_id=order_id
            )
        return None


def config_of(name: str, config: Mapping[str, Any]) -> RedisConfig:
    return parse(RedisConfig, name, config)


def build_reader(config: RedisConfig) -> DenylistReader:
    """A synchronous reader with a short timeout: a slow Redis must not slow the check."""
    t = config.check_timeout_seconds
    return DenylistReader(
        redis.Redis.from_url(config.url, socket_timeout=t, socket_connect_timeout=t),
        DenylistKeys(config.prefix, config.channel),
        aioredis.Redis.from_url(config.url, socket_timeout=t, socket_connect_timeout=t),
    )


def _build(name: str, config: Mapping[str, Any], deps: AdapterDeps) -> RedisDenylist:
    parsed = config_of(name, config)
    client = aioredis.Redis.from_url(
        parsed.url,
        socket_timeout=parsed.socket_timeout_seconds,
        socket_connect_timeout=parsed.socket_timeout_seconds,
    )
    return RedisDenylist(name, parsed, client)


PLUGIN = AdapterPlugin(
    type="redis",
    actions=frozenset({Action.REVOKE, Action.KILL_SWITCH, Action.RELEASE}),
    build=_build,
    description="Redis denylist (families, tokens, kill switches, with TTLs) + pub/sub",
)
