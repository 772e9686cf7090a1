"""Newest-first pages over a time column: a time window and a keyset cursor.

A cursor is the ``(time, id)`` of the last row of the previous page; the next page is the
rows strictly before it in ``(time desc, id desc)`` order — stable while rows are added,
unlike an offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_

S = TypeVar("S", bound=Select[Any])


def newest_first(
    query: S,
    *,
    at: ColumnElement[Any],
    id_: ColumnElement[Any],
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> S:
    """``query`` ordered newest first, limited, with ``since <= at < until`` and, given a
    cursor, only the rows after it."""
    query = query.order_by(at.desc(), id_.desc()).limit(limit)
    if since is not None:
        query = query.where(at >= since)
    if until is not None:
        query = query.where(at < until)
    if before is not None:
        last_at, last_id = before
        query = query.where(or_(at < last_at, and_(at == last_at, id_ < last_id)))
    return query
