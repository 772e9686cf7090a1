"""The audit trail: append-only rows saying who did what to which order, switch or key.

DESIGN.md, non-negotiables: a revocation order is "visible with its evidence". Every order
recorded, executed, dry-run, failed or released leaves a row here; nothing updates or
deletes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, insert, select

from revocation.tables import audit_log


class AuditEntry(BaseModel):
    """One audit row."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: datetime
    actor: str
    kind: str
    ref: str | None
    data: dict[str, Any]


def append_audit(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    kind: str,
    ref: str | None,
    data: Mapping[str, Any],
) -> None:
    """Append one row (``kind`` like ``order.executed``; ``ref`` the order or switch id)."""
    conn.execute(insert(audit_log).values(at=at, actor=actor, kind=kind, ref=ref, data=dict(data)))


def append_audit_many(conn: Connection, *, rows: list[dict[str, Any]]) -> None:
    """Append several rows in one statement (keys: at, actor, kind, ref, data)."""
    if rows:
        conn.execute(insert(audit_log), rows)


def list_audit(conn: Connection, *, ref: str | None = None, limit: int = 100) -> list[AuditEntry]:
    """Audit rows, newest first; only those about ``ref`` when given."""
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if ref is not None:
        query = query.where(audit_log.c.ref == ref)
    return [AuditEntry.model_validate(row._mapping) for row in conn.execute(query)]
