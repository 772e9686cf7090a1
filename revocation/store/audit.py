"""The audit trail: append-only, hash-chained rows saying who did what, and when.

DESIGN.md, non-negotiables: a revocation order is "visible with its evidence". Every
decision and action leaves a row: a detection recorded, an order recorded, executed or
dry-run, an adapter delivery succeeded or failed, a kill switch thrown or released, an
alert opened or acknowledged — with the actor (``policy``, a detector, ``dispatcher``, or
the human behind a manual action).

Tamper evidence: row ``n`` carries ``prev_hash`` (row ``n-1``'s hash, or 64 zeros for the
first row) and ``hash = SHA-256(prev_hash || canonical(seq, at, actor, kind, ref, data))``.
Editing a row changes its hash; deleting one breaks the next row's ``prev_hash``; cutting
rows off the end disagrees with the chain head (``audit_head``: last ``seq`` and ``hash``).
``verify_chain`` recomputes the chain and names the first broken link. Anyone able to
rewrite the whole table *and* the head can forge a consistent chain: export the head hash
(``tokenwarden audit verify`` prints it) to somewhere they cannot write, and compare.

Appends serialise on the head row: ``SELECT … FOR UPDATE`` on PostgreSQL (SQLite has one
writer at a time), and ``seq`` is assigned under that lock, so the chain is linear however
many processes append. Callers append once per transaction, at its end, so the lock is held
only for the insert and the commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, bindparam, insert, select, update

from revocation.statements import per_dialect
from revocation.tables import audit_head, audit_log

GENESIS = "0" * 64
_EXACT = 2**53
HEAD_ID = 1


class AuditEntry(BaseModel):
    """One audit row."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: datetime
    actor: str
    kind: str
    ref: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


def _normal(value: Any) -> Any:
    """JSON as any backend reads it back: PostgreSQL's JSONB prints ``2.0`` as ``2.0`` but
    ``1e20`` as ``100000000000000000000`` (an int on the way back). So integral numbers
    are ints up to 2**53 and floats beyond (where a float cannot tell them apart anyway)."""
    if isinstance(value, bool):
        return value
    if (isinstance(value, float) and value.is_integer()) or isinstance(value, int):
        return int(value) if abs(value) < _EXACT else float(value)
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def canonical(
    *, seq: int, at: datetime, actor: str, kind: str, ref: str | None, data: Any
) -> bytes:
    """The bytes a row's hash covers: sorted-key JSON of its content, time in UTC."""
    content = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "kind": kind,
        "ref": ref,
        "data": _normal(data),
    }
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, content: bytes) -> str:
    """SHA-256 over the previous row's hash and this row's canonical content, hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content).hexdigest()


def audit_row(
    *, at: datetime, actor: str, kind: str, ref: str | None, data: Mapping[str, Any]
) -> dict[str, Any]:
    """A row for ``append_audit_many``."""
    return {"at": at, "actor": actor, "kind": kind, "ref": ref, "data": dict(data)}


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
    append_audit_many(conn, rows=[audit_row(at=at, actor=actor, kind=kind, ref=ref, data=data)])


def append_audit_many(conn: Connection, *, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append rows (keys: at, actor, kind, ref, data) to the chain: three statements —
    lock the head, insert the rows, move the head — whatever their number."""
    if not rows:
        return
    lock_head, insert_rows, move_head = _chain_statements(conn)
    head = conn.execute(lock_head).one_or_none()
    if head is None:
        raise RuntimeError("the audit chain head is missing: run `tokenwarden db upgrade`")
    seq, prev = int(head.seq), str(head.hash)
    out: list[dict[str, Any]] = []
    for row in rows:
        seq += 1
        at = row["at"].astimezone(UTC)
        data = _normal(orjson.loads(orjson.dumps(dict(row["data"]))))
        digest = chain_hash(
            prev,
            canonical(
                seq=seq, at=at, actor=row["actor"], kind=row["kind"], ref=row["ref"], data=data
            ),
        )
        out.append(
            {
                "seq": seq,
                "at": at,
                "actor": row["actor"],
                "kind": row["kind"],
                "ref": row["ref"],
                "data": data,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    conn.execute(insert_rows, out)
    conn.execute(move_head, {"p_seq": seq, "p_hash": prev})


@per_dialect
def _chain_statements(dialect: str) -> tuple[Any, Any, Any]:
    lock_head = (
        select(audit_head.c.seq, audit_head.c.hash)
        .where(audit_head.c.id == HEAD_ID)
        .with_for_update()
    )
    move_head = (
        update(audit_head)
        .where(audit_head.c.id == HEAD_ID)
        .values(seq=bindparam("p_seq"), hash=bindparam("p_hash"))
    )
    return lock_head, insert(audit_log), move_head


def list_audit(
    conn: Connection, *, ref: str | None = None, limit: int = 100, kind: str | None = None
) -> list[AuditEntry]:
    """Audit rows, newest first; only those about ``ref`` (and of ``kind``) when given."""
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if ref is not None:
        query = query.where(audit_log.c.ref == ref)
    if kind is not None:
        query = query.where(audit_log.c.kind == kind)
    return [AuditEntry.model_validate(row._mapping) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of ``verify_chain``: ``ok``, how many rows were checked, the head, and
    for a broken chain the first bad ``seq`` with what is wrong there."""

    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None


def _rows(conn: Connection, chunk: int) -> Iterator[Any]:
    last = -1
    while True:
        batch = conn.execute(
            select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(chunk)
        ).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def verify_chain(conn: Connection, *, chunk: int = 5000) -> ChainReport:
    """Recompute the chain from the first row; stop at the first broken link.

    * ``prev_hash`` differs from the previous row's hash: a row before it was deleted (or
      the previous row's hash was rewritten);
    * the recomputed hash differs from ``hash``: the row was edited;
    * the last row is not the head: rows were cut off the end (or the head was edited).
    """
    head = conn.execute(select(audit_head).where(audit_head.c.id == HEAD_ID)).one_or_none()
    head_seq, head_hash = (int(head.seq), str(head.hash)) if head is not None else (0, GENESIS)
    prev, prev_seq, n = GENESIS, 0, 0

    def broken(seq: int, problem: str) -> ChainReport:
        return ChainReport(False, n, head_seq, head_hash, broken_seq=seq, problem=problem)

    for row in _rows(conn, chunk):
        if row.prev_hash != prev:
            where = f"row {prev_seq}" if prev_seq else "the start of the trail"
            return broken(
                row.seq,
                f"row {row.seq} does not follow {where}: its prev_hash is not that row's hash "
                "(a row in between was deleted, or the previous row was rewritten)",
            )
        content = canonical(
            seq=row.seq, at=row.at, actor=row.actor, kind=row.kind, ref=row.ref, data=row.data
        )
        if chain_hash(prev, content) != row.hash:
            return broken(
                row.seq, f"row {row.seq} ({row.kind}) was edited: its hash does not match"
            )
        prev, prev_seq = row.hash, row.seq
        n += 1
    if (prev_seq, prev) != (head_seq, head_hash):
        return broken(
            prev_seq + 1,
            f"the trail ends at row {prev_seq} but the chain head says row {head_seq}: "
            "rows were removed from the end (or the head was changed)",
        )
    return ChainReport(True, n, head_seq, head_hash)
