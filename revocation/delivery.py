"""What an adapter is handed, what it answers, and how it fails.

An adapter carries orders somewhere else — our token store, a Redis denylist, the IdP's
RFC 7009 endpoint, a webhook. Each is one module behind the ``Adapter`` protocol, loaded
by name from the ``tokenwarden.adapters`` entry-point group (``revocation.adapters``).

``Delivery`` is one outbox entry, resolved against the store at delivery time: the order,
the families and tokens it covers (newest first, bounded), and the kill switches active
on its target. Resolving late means a redelivery after a crash sees today's state: tokens
seen since, a switch released meanwhile. The first delivery of an order the pipeline just
committed is the exception: its scope is what that transaction revoked, read back with
``RETURNING`` (a family newly revoked, with all its tokens — the same rows ``scope_of``
would read a moment later), so the denylist is written without a second query.

Errors (the dispatcher's view)::

    DeliveryError            the attempt failed; retried with backoff
    └── PermanentDeliveryError   retrying as is cannot help (bad credentials, a 4xx):
                                 still retried, at the longest backoff, and alerted on
    AdapterConfigError       a configured adapter cannot be built (at start; fatal)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import httpx
import sqlalchemy as sa

from revocation.order import Action, RevocationOrder


class DeliveryError(Exception):
    """One delivery attempt failed; ``retry_after`` (seconds), when the target said so."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The target refused in a way a retry alone will not fix (configuration, a 4xx)."""


class AdapterConfigError(ValueError):
    """An adapter's configuration is unusable; the message names the adapter and field."""


@dataclass(frozen=True, slots=True)
class TokenRef:
    """A token identifier (a jti, or our keyed hash ``h1:…`` — never a raw token)."""

    token_id: str
    family_id: str | None
    type: str | None
    issued_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class FamilyRef:
    tenant: str
    family_id: str
    user: str | None
    agent: str | None
    client_id: str | None
    session_id: str | None
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    revoked_by_order: str | None


@dataclass(frozen=True, slots=True)
class SwitchRef:
    id: str
    tenant: str
    kind: str
    value: str
    order_id: str | None
    reason: str
    thrown_at: datetime
    released_at: datetime | None


@dataclass(frozen=True, slots=True)
class Scope:
    """What an order covers in the store right now. ``switches``: the kill switches active
    on the order's target entity (for kill-switch and release orders). ``truncated``: more
    families or tokens exist than the bounds allowed."""

    families: tuple[FamilyRef, ...] = ()
    tokens: tuple[TokenRef, ...] = ()
    switches: tuple[SwitchRef, ...] = ()
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox entry to carry out. ``id`` doubles as the idempotency key a receiver
    dedupes on (stable across retries); ``attempt`` counts from 1."""

    id: str
    adapter: str
    attempt: int
    order: RevocationOrder
    scope: Scope


@runtime_checkable
class Adapter(Protocol):
    """Carries orders to one destination. ``deliver`` must be idempotent in effect: the
    same ``Delivery`` may arrive more than once (a crash between the call and recording
    its result). It returns a small JSON-able result kept with the entry, or raises
    ``DeliveryError``."""

    name: str

    async def deliver(self, delivery: Delivery, *, now: datetime) -> Mapping[str, Any]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AdapterDeps:
    """What the composition root hands every adapter it builds: the store's engine and the
    one ``httpx.AsyncClient`` all outbound HTTP goes through."""

    db: sa.Engine
    http: httpx.AsyncClient
    extra: Mapping[str, Any] = field(default_factory=dict)


#: Builds an adapter instance: (instance name, its config table, dependencies).
AdapterBuilder = Callable[[str, Mapping[str, Any], AdapterDeps], Adapter]


@dataclass(frozen=True, slots=True)
class AdapterPlugin:
    """What an entry point of the ``tokenwarden.adapters`` group names: the adapter type,
    the actions whose (enforced) orders it acts on, and how to build it."""

    type: str
    actions: frozenset[Action]
    build: AdapterBuilder
    description: str = ""
