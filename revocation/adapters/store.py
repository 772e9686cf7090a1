"""``store``: our own token store — marks families and tokens revoked, throws and releases
kill switches, and counts what dry-run orders would have changed.

Always enabled. The pipeline delivers to it synchronously right after the transaction
that recorded the order commits (the fast path: detection → family revoked in a few
milliseconds); the dispatcher delivers only what a crash or a failure left behind. Either
way the effect and the entry's ``delivered`` mark commit together, so the store applies an
order exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from revocation.delivery import AdapterConfigError, AdapterDeps, AdapterPlugin, Delivery
from revocation.order import Action
from revocation.routing import STORE
from revocation.store.orders import apply_one_strict


class StoreAdapter:
    """Applies an order to the SQL store (``revocation.store.orders``)."""

    def __init__(self, name: str, db: sa.Engine) -> None:
        self.name = name
        self.db = db

    async def deliver(self, delivery: Delivery, *, now: datetime) -> Mapping[str, Any]:
        outcome = await asyncio.to_thread(apply_one_strict, self.db, order=delivery.order, now=now)
        return {"families": outcome.families, "tokens": outcome.tokens}

    async def aclose(self) -> None:
        return None


def _build(name: str, config: Mapping[str, Any], deps: AdapterDeps) -> StoreAdapter:
    if config:
        raise AdapterConfigError(f"adapter {name!r}: the store adapter takes no settings")
    return StoreAdapter(name, deps.db)


PLUGIN = AdapterPlugin(
    type=STORE,
    actions=frozenset(Action),
    build=_build,
    description="our token store: families and tokens revoked, kill switches",
)
