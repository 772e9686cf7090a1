"""Dialect-aware ``INSERT … ON CONFLICT``: the one place that knows which backend we are on.

Both SQLite (3.24+, "UPSERT") and PostgreSQL (9.5+, ``INSERT … ON CONFLICT``) spell the
conflict clause the same way, and SQLAlchemy exposes it through each dialect's own
``insert()`` construct with ``on_conflict_do_nothing`` / ``on_conflict_do_update`` and
``.excluded``. Callers build the clause on what this returns.

Many rows at once (``rows_insert`` with ``rows_params``): on PostgreSQL the rows travel as
one JSON document read by ``json_to_recordset`` — one execution, where ``executemany``
costs psycopg a pipeline step and SQLAlchemy a parameter processing per row (~6 times the
client CPU for a batch's token facts, more for detector state); on SQLite, whose driver is
C, one execution per row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Connection,
    Table,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
)
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


#: dict keys of JSON values need not be strings (detector state; as ``TrackedState``)
_DOCUMENT = orjson.OPT_NON_STR_KEYS


def rows_insert(
    dialect: str,
    table: Table,
    columns: Sequence[str],
    computed: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> Insert:
    """An ``INSERT`` of the rows ``rows_params`` passes: on PostgreSQL ``INSERT … SELECT …
    FROM json_to_recordset(…)``, else one row per parameter set (``r_<column>``).
    ``computed(values)`` adds columns computed from a row's values (SQL expressions)."""
    types = {c: table.c[c].type for c in columns}
    values: dict[str, Any]
    if dialect == "postgresql":
        rows = (
            func.json_to_recordset(cast(bindparam("r_rows", type_=Text), JSON))
            .table_valued(*(column(c, t) for c, t in types.items()))
            .render_derived(name="r", with_types=True)
        )
        values = {c: _json_null(rows.c[c]) for c in columns}
    else:
        values = {c: bindparam(f"r_{c}", type_=t) for c, t in types.items()}
    if computed is not None:
        values.update(computed(values))
    ins = insert_for(dialect, table)
    if dialect == "postgresql":
        return ins.from_select(list(values), select(*values.values()))
    return ins.values(**values)


def _json_null(col: Any) -> Any:
    """A JSON column that stores ``None`` as the JSON ``null`` literal (``none_as_null``
    off): ``json_to_recordset`` reads a JSON ``null`` as SQL ``NULL``, so put it back."""
    if isinstance(col.type, JSON) and not col.type.none_as_null:
        return func.coalesce(col, cast(literal_column("'null'"), col.type))
    return col


def rows_params(conn: Connection, rows: Sequence[Mapping[str, Any]], **extra: Any) -> Any:
    """The parameters of a ``rows_insert`` statement for ``rows`` (column -> value, in the
    order the rows should be written: PostgreSQL reads the document in order), plus
    ``extra`` parameters shared by every row."""
    if conn.dialect.name == "postgresql":
        return {"r_rows": orjson.dumps(rows, option=_DOCUMENT).decode(), **extra}
    return [{**{f"r_{k}": v for k, v in row.items()}, **extra} for row in rows]
