"""The SQL store of the revocation layer: token families, detections, orders, kill
switches, the audit trail and detector-state snapshots (SQLite and PostgreSQL).

Service functions take the ``sqlalchemy.Connection`` explicitly and the caller owns the
transaction, except ``execute_orders`` and ``retry_pending``, which take the ``Engine``
because they must commit the orders before applying them. Time always comes in as ``now``.
"""

from revocation.store.audit import AuditEntry, append_audit, list_audit
from revocation.store.checks import ALLOW_REASON, CheckResult, check
from revocation.store.families import (
    TOKEN_ACTIONS,
    FamilyView,
    TokenView,
    get_family,
    record_tokens,
)
from revocation.store.orders import (
    OrderOutcome,
    OrderView,
    apply_orders,
    execute_orders,
    list_orders,
    record_orders,
    release_kill_switch,
    retry_pending,
)
from revocation.store.records import list_detections, load_state, save_detections, save_state

__all__ = [
    "ALLOW_REASON",
    "TOKEN_ACTIONS",
    "AuditEntry",
    "CheckResult",
    "FamilyView",
    "OrderOutcome",
    "OrderView",
    "TokenView",
    "append_audit",
    "apply_orders",
    "check",
    "execute_orders",
    "get_family",
    "list_audit",
    "list_detections",
    "list_orders",
    "load_state",
    "record_orders",
    "record_tokens",
    "release_kill_switch",
    "retry_pending",
    "save_detections",
    "save_state",
]
