"""Column types that behave the same on SQLite and PostgreSQL.

* ``UTCDateTime``: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, SQLAlchemy's ISO text on
  SQLite (which has no time zone type). Only timezone-aware values are accepted; they are
  stored in UTC and always read back as UTC-aware ``datetime`` objects on both backends.
* ``Json`` / ``NullableJson``: ``JSONB`` on PostgreSQL, JSON text on SQLite. ``NullableJson``
  stores Python ``None`` as SQL ``NULL`` rather than the JSON ``null`` literal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC, read back UTC-aware on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite's DATETIME text drops the offset; store UTC wall time and say so on read.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json(*, none_as_null: bool) -> TypeEngine[Any]:
    return JSON(none_as_null=none_as_null).with_variant(
        JSONB(none_as_null=none_as_null), "postgresql"
    )


#: JSON document; ``None`` is stored as the JSON ``null`` literal.
Json: TypeEngine[Any] = _json(none_as_null=False)
#: JSON document or SQL ``NULL``.
NullableJson: TypeEngine[Any] = _json(none_as_null=True)
