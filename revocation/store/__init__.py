"""The SQL store of the revocation layer: token families, detections, orders with their
outbox, kill switches, alerts, the hash-chained audit trail and detector-state snapshots
(SQLite and PostgreSQL).

Service functions take the ``sqlalchemy.Connection`` explicitly and the caller owns the
transaction, except ``execute_orders``, ``apply_orders`` and ``retry_pending``, which take
the ``Engine`` because they must commit the orders before applying them. Time always comes
in as ``now``.
"""

from revocation.store import alerts, outbox
from revocation.store.alerts import AlertView, acknowledge, get_alert, list_alerts
from revocation.store.audit import (
    AuditEntry,
    ChainReport,
    append_audit,
    append_audit_many,
    list_audit,
    verify_chain,
)
from revocation.store.checks import ALLOW_REASON, CheckResult, check
from revocation.store.detector_models import (
    EncodedModel,
    StoredModel,
    encode_models,
    list_models,
    load_models,
    save_models,
)
from revocation.store.families import (
    TOKEN_ACTIONS,
    FamilyView,
    TokenView,
    get_family,
    record_tokens,
)
from revocation.store.orders import (
    OrderOutcome,
    OrderSummary,
    OrderView,
    apply_orders,
    execute_orders,
    get_order,
    get_orders,
    list_orders,
    record_and_apply,
    record_orders,
    release_kill_switch,
    retry_pending,
    summarize,
)
from revocation.store.outbox import DeliveryView, deliveries
from revocation.store.records import list_detections, load_state, save_detections, save_state
from revocation.store.scope import get_switch, list_switches, scope_of

__all__ = [
    "ALLOW_REASON",
    "TOKEN_ACTIONS",
    "AlertView",
    "AuditEntry",
    "ChainReport",
    "CheckResult",
    "DeliveryView",
    "EncodedModel",
    "FamilyView",
    "OrderOutcome",
    "OrderSummary",
    "OrderView",
    "StoredModel",
    "TokenView",
    "acknowledge",
    "alerts",
    "append_audit",
    "append_audit_many",
    "apply_orders",
    "check",
    "deliveries",
    "encode_models",
    "execute_orders",
    "get_alert",
    "get_family",
    "get_order",
    "get_orders",
    "get_switch",
    "list_alerts",
    "list_audit",
    "list_detections",
    "list_models",
    "list_orders",
    "list_switches",
    "load_models",
    "load_state",
    "outbox",
    "record_and_apply",
    "record_orders",
    "record_tokens",
    "release_kill_switch",
    "retry_pending",
    "save_detections",
    "save_models",
    "save_state",
    "scope_of",
    "summarize",
    "verify_chain",
]
