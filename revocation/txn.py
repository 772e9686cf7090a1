"""Write transactions that never fail on SQLite's snapshot upgrade.

On SQLite in WAL mode a transaction that began by reading (``BEGIN DEFERRED``) and then
writes after another connection committed fails at once with ``SQLITE_BUSY_SNAPSHOT`` —
the busy timeout does not apply. Every transaction of the revocation layer that writes
therefore begins ``IMMEDIATE`` (takes the write lock first, waiting up to the busy timeout);
readers keep ``DEFERRED`` and never block. On PostgreSQL this is a plain transaction.

The engine must come from ``tokenwarden.db.make_engine``, whose ``begin`` listener reads the
execution option named here (a test checks the two names agree).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

#: The execution option ``tokenwarden.db.make_engine`` reads to choose how SQLite begins.
SQLITE_BEGIN_OPTION = "tokenwarden_sqlite_begin"


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the write lock from its start (SQLite) —
    committed when the block ends, rolled back if it raises."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with conn.begin():
            yield conn
