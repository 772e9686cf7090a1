"""The initial store: secrets, families, tokens, detections, orders, kill switches, audit
log and detector state (``revocation.tables``).

Written by hand; ``tests/revocation/test_migrations.py`` checks it matches the tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "instance_secrets",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_instance_secrets"),
    )
    op.create_table(
        "families",
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("family_id", sa.String(), nullable=False),
        sa.Column("user", sa.String(), nullable=True),
        sa.Column("agent", sa.String(), nullable=True),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("last_seen_at", _ts(), nullable=False),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.Column("revoked_by_order", sa.String(), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "family_id", name="pk_families"),
    )
    op.create_table(
        "tokens",
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("token_id", sa.String(), nullable=False),
        sa.Column("family_id", sa.String(), nullable=True),
        sa.Column("parent_id", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("issued_at", _ts(), nullable=False),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "token_id", name="pk_tokens"),
    )
    op.create_index("ix_tokens_tenant_family_id", "tokens", ["tenant", "family_id"])
    op.create_table(
        "detections",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("detector", sa.String(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("time", _ts(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_detections"),
    )
    op.create_index("ix_detections_tenant_time", "detections", ["tenant", "time"])
    op.create_index("ix_detections_time", "detections", ["time"])
    op.create_table(
        "orders",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("target_kind", sa.String(), nullable=False),
        sa.Column("target_value", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("detection_ids", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("executed_at", _ts(), nullable=True),
        sa.Column("affected", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("idempotency_key", name="uq_orders_idempotency_key"),
    )
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_index("ix_orders_tenant_created_at", "orders", ["tenant", "created_at"])
    op.create_index("ix_orders_created_at", "orders", ["created_at"])
    op.create_table(
        "kill_switches",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("thrown_at", _ts(), nullable=False),
        sa.Column("thrown_by", sa.String(), nullable=False),
        sa.Column("released_at", _ts(), nullable=True),
        sa.Column("released_by", sa.String(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_kill_switches"),
    )
    op.create_index(
        "ix_kill_switches_tenant_kind_value", "kill_switches", ["tenant", "kind", "value"]
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("ref", sa.String(), nullable=True),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_ref", "audit_log", ["ref"])
    op.create_table(
        "detector_state",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", _json(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_detector_state"),
    )


def downgrade() -> None:
    op.drop_table("detector_state")
    op.drop_index("ix_audit_log_ref", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_kill_switches_tenant_kind_value", table_name="kill_switches")
    op.drop_table("kill_switches")
    op.drop_index("ix_orders_created_at", table_name="orders")
    op.drop_index("ix_orders_tenant_created_at", table_name="orders")
    op.drop_index("ix_orders_status", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_detections_time", table_name="detections")
    op.drop_index("ix_detections_tenant_time", table_name="detections")
    op.drop_table("detections")
    op.drop_index("ix_tokens_tenant_family_id", table_name="tokens")
    op.drop_table("tokens")
    op.drop_table("families")
    op.drop_table("instance_secrets")
