"""Which adapters and alert sinks an order goes to: small value objects, built from settings
by the composition root and handed to the store, which writes one outbox entry per
destination in the transaction that records the order.

* The token store (``store``) gets every order: it is the source of truth ``/v1/check``
  reads, it counts what a dry-run order would have changed, and it throws and releases
  kill switches.
* Every other adapter gets the enforced orders whose action it handles (its plugin's
  ``actions``), optionally only those of some tenants. Dry-run orders never leave the
  store: they record what would have happened and nothing else.
* Enforced revoke, kill-switch and alert-only orders open an alert (``AlertPolicy``), one
  per entity per cool-down, sent to every configured sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from revocation.backoff import Backoff
from revocation.order import Action, Mode, RevocationOrder

#: The name of our own token store's adapter: always enabled, always first.
STORE = "store"
#: Outbox purposes.
REVOKE = "revoke"
ALERT = "alert"


@dataclass(frozen=True, slots=True)
class Route:
    """An enabled adapter: its instance name (the outbox key), the actions it acts on, and
    the tenants whose orders it takes (``None``: all)."""

    name: str
    actions: frozenset[Action]
    tenants: frozenset[str] | None = None

    def wants(self, order: RevocationOrder) -> bool:
        if self.name == STORE:
            return True
        return (
            order.mode == Mode.ENFORCE
            and order.action in self.actions
            and (self.tenants is None or order.target.tenant in self.tenants)
        )


STORE_ROUTE = Route(name=STORE, actions=frozenset(Action))


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """One alert per entity (an order's target) per ``cooldown``, orders on the same entity
    within it folded in with a count; at most ``max_per_cooldown`` alerts per tenant per
    cool-down are sent (the rest are recorded ``rate_limited`` and counted in the next
    one sent). ``sinks`` are the alert sinks' names."""

    sinks: tuple[str, ...] = ()
    cooldown: timedelta = timedelta(minutes=5)
    max_per_cooldown: int = 20
    actions: frozenset[Action] = frozenset({Action.REVOKE, Action.KILL_SWITCH, Action.ALERT_ONLY})

    def wants(self, order: RevocationOrder) -> bool:
        return order.mode == Mode.ENFORCE and order.action in self.actions


@dataclass(frozen=True, slots=True)
class Preclaim:
    """Entries of adapters outside the database are written already claimed by ``owner``
    (a dispatcher in the same process) until ``lease`` has passed, and handed to it
    directly after the commit — saving the claim transaction on the hot path. If the
    process dies, the lease runs out and any dispatcher delivers them."""

    owner: str
    lease: timedelta


@dataclass(frozen=True, slots=True)
class Routing:
    """Where orders go. ``store_grace``: how long a new order's store entry waits before the
    dispatcher may take it (the pipeline applies it synchronously right after the commit;
    the dispatcher only picks up what a crash left behind). ``backoff`` schedules retries
    of store deliveries that fail on the synchronous path."""

    routes: tuple[Route, ...] = ()
    alerts: AlertPolicy = AlertPolicy()
    store_grace: timedelta = timedelta(seconds=2)
    backoff: Backoff = field(default_factory=Backoff)
    preclaim: Preclaim | None = None

    def __post_init__(self) -> None:
        names = [r.name for r in self.routes]
        if STORE in names:
            raise ValueError(f"the {STORE!r} adapter is always enabled; do not configure it")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"adapter names must be unique; repeated: {dupes}")

    @property
    def all_routes(self) -> tuple[Route, ...]:
        return (STORE_ROUTE, *self.routes)

    def destinations(self, order: RevocationOrder) -> list[str]:
        """The adapters that get an outbox entry for ``order``; the store first."""
        return [r.name for r in self.all_routes if r.wants(order)]
