"""Shared Signals: accepted jti's, stream state, release orders, device-bound families.

``ssf_jti`` and ``ssf_streams`` (``revocation.tables``); ``orders.releases`` (the rules whose
kill switches a release order may release); ``families.device_id`` (CAEP
device-compliance-change revokes the families used from a device).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ssf_jti",
        sa.Column("issuer", sa.String(), nullable=False),
        sa.Column("jti", sa.String(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name="pk_ssf_jti"),
    )
    op.create_index("ix_ssf_jti_expires_at", "ssf_jti", ["expires_at"])
    op.create_table(
        "ssf_streams",
        sa.Column("issuer", sa.String(), nullable=False),
        sa.Column("stream_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("config", _json(), nullable=True),
        sa.Column("verification_state", sa.String(), nullable=True),
        sa.Column("verification_requested_at", _ts(), nullable=True),
        sa.Column("verified_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", name="pk_ssf_streams"),
    )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("releases", _json(), nullable=True))
    with op.batch_alter_table("families") as batch:
        batch.add_column(sa.Column("device_id", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("families") as batch:
        batch.drop_column("device_id")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("releases")
    op.drop_table("ssf_streams")
    op.drop_index("ix_ssf_jti_expires_at", table_name="ssf_jti")
    op.drop_table("ssf_jti")
