"""Test doubles for the executor: a scripted adapter and a clock the test moves."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from revocation.backoff import Backoff
from revocation.delivery import Adapter, Delivery
from revocation.dispatcher import Dispatcher, DispatchSettings
from revocation.order import Action
from revocation.routing import Route, Routing
from revocation.store.orders import apply_one_strict
from tests.revocation.helpers import at


@dataclass
class Clock:
    """Wall time and monotonic time, moved only by the test."""

    now: datetime = field(default_factory=lambda: at(1000))
    mono: float = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


class ScriptedAdapter:
    """Fails with the scripted exceptions first, then succeeds; records every call."""

    def __init__(self, name: str, failures: list[Exception] | None = None) -> None:
        self.name = name
        self.failures = list(failures or [])
        self.calls: list[Delivery] = []
        self.effects: set[str] = set()  # idempotency: what a real target would hold

    async def deliver(self, delivery: Delivery, *, now: datetime) -> Mapping[str, Any]:
        self.calls.append(delivery)
        if self.failures:
            raise self.failures.pop(0)
        self.effects.add(delivery.id)
        return {"ok": True, "attempt": delivery.attempt}

    async def aclose(self) -> None:
        return None


class StoreForTests:
    """The store adapter, for dispatchers built in tests."""

    def __init__(self, db: sa.Engine) -> None:
        self.name = "store"
        self.db = db

    async def deliver(self, delivery: Delivery, *, now: datetime) -> Mapping[str, Any]:
        out = apply_one_strict(self.db, order=delivery.order, now=now)
        return {"families": out.families, "tokens": out.tokens}

    async def aclose(self) -> None:
        return None


def routing(*names: str, grace: float = 0.0, **kw: Any) -> Routing:
    return Routing(
        routes=tuple(Route(name=n, actions=frozenset(Action)) for n in names),
        store_grace=timedelta(seconds=grace),
        backoff=Backoff(base=1.0, cap=60.0, rng=random.Random(7)),
        **kw,
    )


def dispatcher(
    db: sa.Engine,
    clock: Clock,
    *adapters: Adapter,
    sinks: Mapping[str, Any] | None = None,
    **settings: Any,
) -> Dispatcher:
    return Dispatcher(
        db=db,
        adapters={a.name: a for a in adapters},
        sinks=sinks,
        settings=DispatchSettings(**settings),
        backoff=Backoff(base=1.0, cap=60.0, rng=random.Random(7)),
        clock=clock.wall,
        monotonic=clock.monotonic,
        owner="test",
    )
