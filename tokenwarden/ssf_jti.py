"""The durable ``jti`` store: accepted ``(issuer, jti)`` pairs in the database.

Implements ``ssf.JtiStore`` over the ``ssf_jti`` table, plus the read-only ``seen`` the
push endpoint asks first: a SET is marked only after its events were processed, so a crash
in between makes the transmitter's redelivery act (at least once; orders are idempotent),
never lose the signal.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import sqlalchemy as sa

from revocation.tables import ssf_jti
from revocation.upsert import dialect_insert


def seen(conn: sa.Connection, *, issuer: str, jti: str, now: datetime) -> bool:
    """Whether ``(issuer, jti)`` was accepted and has not expired."""
    expires = conn.execute(
        sa.select(ssf_jti.c.expires_at).where(ssf_jti.c.issuer == issuer, ssf_jti.c.jti == jti)
    ).scalar_one_or_none()
    return expires is not None and expires > now


def add(conn: sa.Connection, *, issuer: str, jti: str, now: datetime, retention: timedelta) -> bool:
    """Record ``(issuer, jti)`` in the caller's transaction; False if it was already there
    and has not expired (an expired entry is taken over)."""
    ins = dialect_insert(conn, ssf_jti).values(issuer=issuer, jti=jti, expires_at=now + retention)
    stmt = ins.on_conflict_do_update(
        index_elements=[ssf_jti.c.issuer, ssf_jti.c.jti],
        set_={"expires_at": ins.excluded.expires_at},
        where=ssf_jti.c.expires_at <= now,
    ).returning(ssf_jti.c.jti)
    return conn.execute(stmt).first() is not None


class SqlJtiStore:
    """``ssf.JtiStore`` on SQLite or PostgreSQL."""

    def __init__(self, db: sa.Engine) -> None:
        self.db = db

    def _seen(self, issuer: str, jti: str, now: datetime) -> bool:
        with self.db.connect() as conn:
            return seen(conn, issuer=issuer, jti=jti, now=now)

    def _seen_or_add(self, issuer: str, jti: str, now: datetime, retention: timedelta) -> bool:
        with self.db.begin() as conn:
            return not add(conn, issuer=issuer, jti=jti, now=now, retention=retention)

    async def seen(self, issuer: str, jti: str, *, now: datetime) -> bool:
        return await asyncio.to_thread(self._seen, issuer, jti, now)

    async def seen_or_add(
        self, issuer: str, jti: str, *, now: datetime, retention: timedelta
    ) -> bool:
        return await asyncio.to_thread(self._seen_or_add, issuer, jti, now, retention)

    def purge(self, *, now: datetime) -> int:
        with self.db.begin() as conn:
            return conn.execute(sa.delete(ssf_jti).where(ssf_jti.c.expires_at <= now)).rowcount
