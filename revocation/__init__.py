"""Detection -> RevocationOrder -> executed: the policy, the SQL store (token families,
kill switches, orders as an outbox, audit trail) and its tables."""

from revocation import store
from revocation.order import Action, Mode, RevocationOrder, Status, Target, TargetKind
from revocation.policy import DEFAULT_RULES, Policy, PolicyError, PolicyRule
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
    "Action",
    "CheckResult",
    "FamilyView",
    "Mode",
    "OrderOutcome",
    "OrderView",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "RevocationOrder",
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
