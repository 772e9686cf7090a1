"""The SQL store's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

The schema is created by the Alembic migrations in ``tokenwarden/migrations``; a test
checks that the migrations and this module describe the same schema. Rows stay here:
the rest of the code sees the pydantic types of ``revocation.store``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from revocation.sqltypes import Json, NullableJson, UTCDateTime

#: Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: Identifiers are unbounded VARCHARs: the wire schema bounds most of them, but a value we
#: did not bound (a session id from ``attributes``) must never fail a whole batch.
Id = String

#: Instance-wide secrets generated on first start (e.g. the token hash key).
instance_secrets = Table(
    "instance_secrets",
    metadata,
    Column("name", String, primary_key=True),
    Column("value", Text, nullable=False),
)

#: Token families (RFC 9700 §4.14.2: every refresh token descends from one grant).
#: ``user``/``agent``/``client_id``/``session_id`` come from the family's first sighting.
families = Table(
    "families",
    metadata,
    Column("tenant", Id, primary_key=True),
    Column("family_id", Id, primary_key=True),
    Column("user", Id),
    Column("agent", Id),
    Column("client_id", Id),
    Column("session_id", Id),
    Column("device_id", Id),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("revoked_by_order", Id),
    Column("revoke_reason", Text),
)

#: Token identifiers (jti or keyed hash, never raw tokens) and the family they belong to.
#: ``family_id`` is NULL only for a token revoked by id before it was ever seen.
tokens = Table(
    "tokens",
    metadata,
    Column("tenant", Id, primary_key=True),
    Column("token_id", Id, primary_key=True),
    Column("family_id", Id),
    Column("parent_id", Id),
    Column("type", String),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Index("ix_tokens_tenant_family_id", "tenant", "family_id"),
)

#: Detections; ``data`` is the full ``Detection`` JSON, the other columns are for queries.
detections = Table(
    "detections",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant", Id, nullable=False),
    Column("detector", String, nullable=False),
    Column("entity", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("severity", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("data", Json, nullable=False),
    Index("ix_detections_tenant_time", "tenant", "time"),
    Index("ix_detections_time", "time"),
)

#: Revocation orders: durable before they are applied (the executor's outbox).
orders = Table(
    "orders",
    metadata,
    Column("id", Id, primary_key=True),
    Column("idempotency_key", String, nullable=False, unique=True),
    Column("tenant", Id, nullable=False),
    Column("target_kind", String, nullable=False),
    Column("target_value", Id, nullable=False),
    Column("action", String, nullable=False),
    Column("mode", String, nullable=False),
    Column("status", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("rule", String, nullable=False),
    Column("releases", NullableJson),
    Column("detection_ids", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("executed_at", UTCDateTime),
    Column("affected", NullableJson),
    Column("actor", String),
    Column("kill_switch_id", Id),
    Column("updated_at", UTCDateTime),
    Index("ix_orders_status", "status"),
    Index("ix_orders_tenant_created_at", "tenant", "created_at"),
    Index("ix_orders_created_at", "created_at"),
)

#: Kill switches: deny everything of a subject, agent, client, session or tenant — including
#: families first seen after the switch was thrown — until released.
kill_switches = Table(
    "kill_switches",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant", Id, nullable=False),
    Column("kind", String, nullable=False),
    Column("value", Id, nullable=False),
    Column("order_id", Id),
    Column("reason", Text, nullable=False),
    Column("thrown_at", UTCDateTime, nullable=False),
    Column("thrown_by", String, nullable=False),
    Column("released_at", UTCDateTime),
    Column("released_by", String),
    Column("release_reason", Text),
    Index("ix_kill_switches_tenant_kind_value", "tenant", "kind", "value"),
)

#: Append-only, hash-chained audit trail (``revocation.store.audit``): ``seq`` orders it and
#: is assigned under the chain head's lock; ``hash`` = SHA-256 over ``prev_hash`` and the
#: row's canonical content, so an edited or deleted row breaks the chain. Triggers refuse
#: UPDATE and DELETE (migration 0003).
audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("ref", Id),
    Column("data", Json, nullable=False),
    Column("prev_hash", String, nullable=False),
    Column("hash", String, nullable=False),
    Index("ix_audit_log_ref", "ref"),
    sqlite_autoincrement=True,
)

#: The audit chain's head: one row (``id`` = 1) with the last ``seq`` and its ``hash``.
#: Appending locks it (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has one writer), so
#: concurrent appends serialise; it also reveals a truncated trail.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String, nullable=False),
)

#: The transactional outbox: one entry per (order, adapter) — and per (alert, sink) —
#: committed in the transaction that records the order, before any adapter is called.
#: ``state``: pending → delivering (claimed until ``lease_until``) → delivered, or failed
#: (retried at ``next_attempt_at`` with backoff). ``purpose`` is ``revoke`` or ``alert``.
outbox = Table(
    "outbox",
    metadata,
    Column("id", String, primary_key=True),
    Column("order_id", Id, nullable=False),
    Column("alert_id", Id),
    Column("adapter", String, nullable=False),
    Column("purpose", String, nullable=False),
    Column("state", String, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("claimed_by", String),
    Column("first_attempt_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("last_error", Text),
    Column("result", NullableJson),
    Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
    Index("ix_outbox_order_id", "order_id"),
)

#: On-call alerts: one per entity (an order's target) per cool-down; orders on the same
#: entity within the cool-down are folded in (``count``). ``status``: ``open`` (sent to the
#: sinks through the outbox) or ``rate_limited`` (recorded, not sent: the tenant's alert
#: budget for the cool-down was spent).
alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant", Id, nullable=False),
    Column("entity", Text, nullable=False),
    Column("order_id", Id, nullable=False),
    Column("last_order_id", Id, nullable=False),
    Column("rule", String, nullable=False),
    Column("status", String, nullable=False),
    Column("count", Integer, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String),
    Column("ack_note", Text),
    Index("ix_alerts_entity_opened_at", "entity", "opened_at"),
    Index("ix_alerts_tenant_opened_at", "tenant", "opened_at"),
)

#: Snapshots of the embedded runner's in-memory detector state (DESIGN.md, "Entity key and
#: state"): one row per state key.
detector_state = Table(
    "detector_state",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Json, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

#: The ``model`` detector's fitted model per tenant (``detectors.model_artifact``: a
#: pickle-free archive of the forest and the rows it was fitted on), saved with the batch
#: whose traffic fitted it and loaded at start; the newest ``trained_at`` (event time) wins.
detector_models = Table(
    "detector_models",
    metadata,
    Column("tenant", Id, primary_key=True),
    Column("trained_at", UTCDateTime, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("artifact", LargeBinary, nullable=False),
    Column("saved_at", UTCDateTime, nullable=False),
)

#: Accepted SETs by ``(issuer, jti)`` until ``expires_at`` (RFC 8417 §2.2 ``jti``): a
#: redelivered SET is answered like the first delivery and acted on once.
ssf_jti = Table(
    "ssf_jti",
    metadata,
    Column("issuer", String, primary_key=True),
    Column("jti", String, primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_ssf_jti_expires_at", "expires_at"),
)

#: One row per SSF transmitter we receive from: its stream (SSF 1.0 §8.1) as last known,
#: the status a ``stream-updated`` event or the status endpoint reported (§8.1.2), and the
#: last verification ``state`` we requested and whether it came back (§8.1.4).
ssf_streams = Table(
    "ssf_streams",
    metadata,
    Column("issuer", String, primary_key=True),
    Column("stream_id", String),
    Column("status", String, nullable=False),
    Column("reason", Text),
    Column("config", NullableJson),
    Column("verification_state", String),
    Column("verification_requested_at", UTCDateTime),
    Column("verified_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

#: API keys (``tokenwarden.auth.api_keys``): ``twk_<id>_<secret>``, of which only the
#: SHA-256 of the whole key is stored (``secret_hash``); the key itself is shown once, at
#: creation. ``tenant`` NULL is the instance-wide admin key made on first start; ``scopes``
#: a JSON list (``ingest``, ``check``, ``admin``, ``metrics``); ``role`` the role of an
#: ``admin``-scoped key. A revoked key keeps its row (``revoked_at``) for the audit trail.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String, primary_key=True),
    Column("secret_hash", String, nullable=False),
    Column("tenant", Id),
    Column("scopes", Json, nullable=False),
    Column("role", String),
    Column("name", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("revoked_by", String),
    Index("ix_api_keys_tenant", "tenant"),
)

#: The policy set through ``PUT /v1/policy`` (one row, ``id`` = 1): it replaces the
#: configured ``[policy]`` from then on, across restarts. ``rules`` NULL means the defaults.
policy_config = Table(
    "policy_config",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("rules", NullableJson),
    Column("modes", Json, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String, nullable=False),
)

__all__ = [
    "alerts",
    "api_keys",
    "audit_head",
    "audit_log",
    "detections",
    "detector_models",
    "detector_state",
    "families",
    "instance_secrets",
    "kill_switches",
    "metadata",
    "orders",
    "outbox",
    "policy_config",
    "ssf_jti",
    "ssf_streams",
    "tokens",
]
