"""Detections and detector-state snapshots.

Both are written once per batch with one statement each, whatever the batch size
(DESIGN.md, "Batches all the way"), and both are keyed so a retried batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select

from detectors.detection import Detection
from revocation.tables import detections as detections_table
from revocation.tables import detector_state
from revocation.upsert import dialect_insert


def save_detections(conn: Connection, *, detections: Sequence[Detection]) -> int:
    """Insert the detections not stored yet (by id); return how many were new.

    Detection ids are deterministic (``Detection.make_id``), so a replayed batch adds nothing.
    """
    rows: dict[str, dict[str, Any]] = {}
    for d in detections:
        rows.setdefault(
            d.id,
            {
                "id": d.id,
                "tenant": d.tenant,
                "detector": d.detector,
                "entity": d.entity,
                "score": d.score,
                "severity": d.severity.value,
                "reason": d.reason,
                "time": d.time,
                "data": d.model_dump(mode="json"),
            },
        )
    if not rows:
        return 0
    ins = dialect_insert(conn, detections_table)
    stmt = ins.on_conflict_do_nothing(index_elements=[detections_table.c.id]).returning(
        detections_table.c.id
    )
    return len(conn.execute(stmt, [rows[k] for k in sorted(rows)]).all())


def list_detections(
    conn: Connection,
    *,
    tenant: str | None = None,
    limit: int = 100,
    since: datetime | None = None,
) -> list[Detection]:
    """Detections, newest first (by detection time); of one tenant and/or since a time."""
    query = (
        select(detections_table.c.data)
        .order_by(detections_table.c.time.desc(), detections_table.c.id.desc())
        .limit(limit)
    )
    if tenant is not None:
        query = query.where(detections_table.c.tenant == tenant)
    if since is not None:
        query = query.where(detections_table.c.time >= since)
    return [Detection.model_validate(data) for data in conn.scalars(query)]


def load_state(conn: Connection) -> dict[str, Any]:
    """The whole detector-state snapshot, as saved by ``save_state``."""
    rows = conn.execute(select(detector_state.c.key, detector_state.c.value))
    return {key: value for key, value in rows}


def save_state(
    conn: Connection,
    *,
    changed: Mapping[str, Any],
    deleted: Iterable[str],
    now: datetime,
) -> None:
    """Upsert the changed keys and delete the deleted ones: at most two statements.

    A key both changed and deleted counts as changed (its last write wins in the mapping).
    Values must be JSON-serialisable, as detector state is (``detectors.base``).
    """
    gone = sorted({k for k in deleted if k not in changed})
    if gone:
        conn.execute(
            delete(detector_state).where(detector_state.c.key == bindparam("p_key")),
            [{"p_key": k} for k in gone],
        )
    if changed:
        ins = dialect_insert(conn, detector_state)
        stmt = ins.on_conflict_do_update(
            index_elements=[detector_state.c.key],
            set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
        )
        conn.execute(
            stmt,
            [{"key": k, "value": changed[k], "updated_at": now} for k in sorted(changed)],
        )
