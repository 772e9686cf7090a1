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
from revocation.sqltypes import UTCDateTime
from revocation.statements import per_dialect
from revocation.store.audit import audit_row
from revocation.store.keyset import newest_first
from revocation.tables import detections as detections_table
from revocation.tables import detector_state
from revocation.upsert import insert_for, rows_insert, rows_params


def save_detections(
    conn: Connection,
    *,
    detections: Sequence[Detection],
    audit: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> int:
    """Insert the detections not stored yet (by id); return how many were new.

    Detection ids are deterministic (``Detection.make_id``), so a replayed batch adds nothing.
    With ``audit`` (and ``now``), a ``detection.recorded`` audit row per new detection is
    appended to it, for the caller to write at the end of its transaction.
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
    new = [r[0] for r in conn.execute(_insert_detections(conn), [rows[k] for k in sorted(rows)])]
    if audit is not None:
        at = now or max(d.time for d in detections)
        for det_id in sorted(new):
            row = rows[det_id]
            audit.append(
                audit_row(
                    at=at,
                    actor=f"detector:{row['detector']}",
                    kind="detection.recorded",
                    ref=det_id,
                    data={
                        "tenant": row["tenant"],
                        "entity": row["entity"],
                        "severity": row["severity"],
                        "score": row["score"],
                        "reason": row["reason"],
                    },
                )
            )
    return len(new)


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


def page_detections(
    conn: Connection,
    *,
    tenant: str | None = None,
    entity: str | None = None,
    detector: str | None = None,
    severities: Sequence[str] | None = None,
    family_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[Detection]:
    """Detections, newest first, filtered; ``before`` is the keyset cursor: only those
    older than that ``(time, id)`` (a page after the last one seen)."""
    t = detections_table.c
    query = newest_first(
        select(t.data), at=t.time, id_=t.id, since=since, until=until, before=before, limit=limit
    )
    if tenant is not None:
        query = query.where(t.tenant == tenant)
    if entity is not None:
        query = query.where(t.entity == entity)
    if detector is not None:
        query = query.where(t.detector == detector)
    if severities is not None:
        query = query.where(t.severity.in_(list(severities)))
    if family_id is not None:
        query = query.where(t.data["family_id"].as_string() == family_id)
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
    """Upsert the changed keys and delete the deleted ones: at most two statements (the
    upsert one execution on PostgreSQL: ``revocation.upsert.rows_insert``).

    A key both changed and deleted counts as changed (its last write wins in the mapping).
    Values must be JSON-serialisable, as detector state is (``detectors.base``).
    """
    gone = sorted({k for k in deleted if k not in changed})
    delete_keys, upsert = _state_statements(conn)
    if gone:
        conn.execute(delete_keys, [{"p_key": k} for k in gone])
    if changed:
        rows = [{"key": k, "value": changed[k]} for k in sorted(changed)]
        conn.execute(upsert, rows_params(conn, rows, p_now=now))


@per_dialect
def _insert_detections(dialect: str) -> Any:
    ins = insert_for(dialect, detections_table)
    return ins.on_conflict_do_nothing(index_elements=[detections_table.c.id]).returning(
        detections_table.c.id
    )


@per_dialect
def _state_statements(dialect: str) -> tuple[Any, Any]:
    delete_keys = delete(detector_state).where(detector_state.c.key == bindparam("p_key"))
    ins = rows_insert(
        dialect,
        detector_state,
        ("key", "value"),
        lambda _: {"updated_at": bindparam("p_now", type_=UTCDateTime())},
    )
    upsert = ins.on_conflict_do_update(
        index_elements=[detector_state.c.key],
        set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
    )
    return delete_keys, upsert


def get_detections(conn: Connection, *, ids: Sequence[str]) -> list[Detection]:
    """The stored detections with these ids, in the given order (missing ones left out)."""
    if not ids:
        return []
    rows = conn.execute(
        select(detections_table.c.id, detections_table.c.data).where(
            detections_table.c.id.in_(sorted(set(ids)))
        )
    )
    found = {row.id: Detection.model_validate(row.data) for row in rows}
    return [found[i] for i in ids if i in found]
