"""Dialect-aware ``INSERT … ON CONFLICT``: the one place that knows which backend we are on.

Both SQLite (3.24+, "UPSERT") and PostgreSQL (9.5+, ``INSERT … ON CONFLICT``) spell the
conflict clause the same way, and SQLAlchemy exposes it through each dialect's own
``insert()`` construct with ``on_conflict_do_nothing`` / ``on_conflict_do_update`` and
``.excluded``. Callers build the clause on what this returns.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

Insert = postgresql.Insert | sqlite.Insert


def dialect_insert(conn: Connection, table: Table) -> Insert:
    """An ``INSERT`` into ``table`` that supports ``ON CONFLICT`` on ``conn``'s backend."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"tokenwarden's store supports SQLite and PostgreSQL, not {name}")


def insert_for(dialect: str, table: Table) -> Insert:
    """``dialect_insert`` by dialect name (for statements built once per dialect)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"tokenwarden's store supports SQLite and PostgreSQL, not {dialect}")
