"""Detection -> RevocationOrder -> executed: the policy, the SQL store (token families,
kill switches, orders with their transactional outbox, alerts, the hash-chained audit
trail), the adapters and the dispatcher that delivers to them."""

from revocation import store
from revocation.delivery import (
    Adapter,
    AdapterConfigError,
    AdapterDeps,
    AdapterPlugin,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    Scope,
)
from revocation.order import Action, Mode, RevocationOrder, Status, Target, TargetKind
from revocation.policy import DEFAULT_RULES, Policy, PolicyError, PolicyRule
from revocation.routing import STORE, AlertPolicy, Route, Routing
from revocation.store import (
    CheckResult,
    FamilyView,
    OrderOutcome,
    OrderView,
    TokenView,
    check,
    execute_orders,
    retry_pending,
)
from revocation.tables import metadata

__all__ = [
    "DEFAULT_RULES",
    "STORE",
    "Action",
    "Adapter",
    "AdapterConfigError",
    "AdapterDeps",
    "AdapterPlugin",
    "AlertPolicy",
    "CheckResult",
    "Delivery",
    "DeliveryError",
    "FamilyView",
    "Mode",
    "OrderOutcome",
    "OrderView",
    "PermanentDeliveryError",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "RevocationOrder",
    "Route",
    "Routing",
    "Scope",
    "Status",
    "Target",
    "TargetKind",
    "TokenView",
    "check",
    "execute_orders",
    "metadata",
    "retry_pending",
    "store",
]
