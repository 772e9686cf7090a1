"""What we know of each SSF transmitter's stream: status, verification round trips.

Rows of ``ssf_streams`` (one per issuer). The push endpoint refuses SETs from an issuer
whose stream is ``disabled`` (RFC 8935 §2.4 ``access_denied``); ``stream-updated`` events
(SSF 1.0 §8.1.5) and the status endpoint update it; ``tokenwarden ssf verify`` records the
``state`` it requested and the receiver marks it verified when a ``verification`` event
(SSF 1.0 §8.1.4) brings the same state back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from revocation.tables import ssf_streams
from revocation.upsert import dialect_insert


def get_stream(conn: sa.Connection, *, issuer: str) -> Any | None:
    return conn.execute(sa.select(ssf_streams).where(ssf_streams.c.issuer == issuer)).first()


def list_streams(conn: sa.Connection) -> list[Any]:
    return list(conn.execute(sa.select(ssf_streams).order_by(ssf_streams.c.issuer)))


def is_disabled(conn: sa.Connection, *, issuer: str) -> bool:
    status = conn.execute(
        sa.select(ssf_streams.c.status).where(ssf_streams.c.issuer == issuer)
    ).scalar_one_or_none()
    return status == "disabled"


def record_stream(
    conn: sa.Connection,
    *,
    issuer: str,
    now: datetime,
    status: str | None = None,
    reason: str | None = None,
    stream_id: str | None = None,
    config: dict[str, Any] | None = None,
) -> None:
    """Create or update the issuer's row with whatever is given."""
    values: dict[str, Any] = {"updated_at": now}
    if status is not None:
        values["status"] = status
        values["reason"] = reason
    if stream_id is not None:
        values["stream_id"] = stream_id
    if config is not None:
        values["config"] = config
    ins = dialect_insert(conn, ssf_streams).values(
        issuer=issuer,
        status=status or "enabled",
        **{k: v for k, v in values.items() if k != "status"},
    )
    conn.execute(ins.on_conflict_do_update(index_elements=[ssf_streams.c.issuer], set_=values))


def request_verification(conn: sa.Connection, *, issuer: str, state: str, now: datetime) -> None:
    record_stream(conn, issuer=issuer, now=now)
    conn.execute(
        sa.update(ssf_streams)
        .where(ssf_streams.c.issuer == issuer)
        .values(verification_state=state, verification_requested_at=now, verified_at=None)
    )


def record_verification(
    conn: sa.Connection, *, issuer: str, state: str | None, now: datetime
) -> bool:
    """Mark the stream verified when ``state`` is the one we asked for; True if it was."""
    if state is None:
        return False
    done = conn.execute(
        sa.update(ssf_streams)
        .where(ssf_streams.c.issuer == issuer, ssf_streams.c.verification_state == state)
        .values(verified_at=now, updated_at=now)
    ).rowcount
    return bool(done)
