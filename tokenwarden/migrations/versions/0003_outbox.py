"""Revocation that never loses an order: the outbox, alerts, and a hash-chained audit trail.

* ``outbox``: one entry per (order, adapter) and per (alert, sink), committed with the order;
* ``alerts``: on-call alerts, one per entity per cool-down;
* ``audit_log.prev_hash`` / ``hash`` and the ``audit_head`` row: the chain (existing rows
  are chained in ``seq`` order here), plus triggers refusing UPDATE and DELETE;
* ``orders.actor`` (who decided), ``orders.kill_switch_id`` (a manual release's switch),
  ``orders.updated_at``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from revocation.sqltypes import UTCDateTime
from revocation.store.audit import GENESIS, canonical, chain_hash

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_FUNCTION = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _chain_existing_rows() -> tuple[int, str]:
    """Chain the rows written before this revision, in ``seq`` order; return the head."""
    bind = op.get_bind()
    log = sa.table(
        "audit_log",
        sa.column("seq", sa.BigInteger()),
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("ref", sa.String()),
        sa.column("data", _json()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    prev, last = GENESIS, 0
    updates: list[dict[str, Any]] = []
    for row in bind.execute(sa.select(log).order_by(log.c.seq)):
        digest = chain_hash(
            prev,
            canonical(
                seq=row.seq, at=row.at, actor=row.actor, kind=row.kind, ref=row.ref, data=row.data
            ),
        )
        updates.append({"p_seq": row.seq, "p_prev": prev, "p_hash": digest})
        prev, last = digest, row.seq
    if updates:
        bind.execute(
            sa.update(log)
            .where(log.c.seq == sa.bindparam("p_seq"))
            .values(prev_hash=sa.bindparam("p_prev"), hash=sa.bindparam("p_hash")),
            updates,
        )
    return last, prev


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("actor", sa.String(), nullable=True))
        batch.add_column(sa.Column("kill_switch_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("updated_at", _ts(), nullable=True))

    with op.batch_alter_table("audit_log", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(), nullable=True))
    seq, digest = _chain_existing_rows()
    with op.batch_alter_table("audit_log", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(), nullable=False)

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": seq, "hash": digest}])

    op.create_table(
        "outbox",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("alert_id", sa.String(), nullable=True),
        sa.Column("adapter", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("next_attempt_at", _ts(), nullable=False),
        sa.Column("lease_until", _ts(), nullable=True),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("first_attempt_at", _ts(), nullable=True),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_order_id", "outbox", ["order_id"])
    # orders recorded but never applied before this revision get their store entry
    op.execute(
        "INSERT INTO outbox (id, order_id, adapter, purpose, state, attempts, created_at, "
        "next_attempt_at) SELECT id || '/store', id, 'store', 'revoke', 'pending', 0, "
        "created_at, created_at FROM orders WHERE status = 'pending'"
    )

    op.create_table(
        "alerts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("last_order_id", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("opened_at", _ts(), nullable=False),
        sa.Column("last_at", _ts(), nullable=False),
        sa.Column("acknowledged_at", _ts(), nullable=True),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("ack_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_entity_opened_at", "alerts", ["entity", "opened_at"])
    op.create_index("ix_alerts_tenant_opened_at", "alerts", ["tenant", "opened_at"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_no_delete")
        op.execute("DROP TRIGGER audit_log_no_update")
    op.drop_index("ix_alerts_tenant_opened_at", table_name="alerts")
    op.drop_index("ix_alerts_entity_opened_at", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_outbox_order_id", table_name="outbox")
    op.drop_index("ix_outbox_state_next_attempt_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_log", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("kill_switch_id")
        batch.drop_column("actor")
