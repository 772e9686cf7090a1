"""Keyset pagination: ``{"items": [...], "next_cursor": str | null}``.

A cursor is the opaque base64url of the last item's ``(time, id)``; the next page holds
the items strictly older than it, so pages never repeat or skip an item while new ones
arrive at the top. Also the time parameters' normalisation: a timestamp without an offset
is taken as UTC.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Query

from tokenwarden.api.errors import ApiError

Cursor = Annotated[
    str | None, Query(max_length=512, description="next_cursor of the previous page")
]
PageLimit = Annotated[int, Query(ge=1, le=500)]


def aware(value: datetime | None) -> datetime | None:
    """``value`` with UTC assumed when it carries no offset."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def encode_cursor(at: datetime, item_id: str) -> str:
    raw = orjson.dumps([at.isoformat(), item_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The ``(time, id)`` of a cursor; 422 ``invalid_cursor`` for anything we did not make."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = orjson.loads(raw)
        parsed = datetime.fromisoformat(at)
        if not isinstance(item_id, str) or parsed.tzinfo is None:
            raise ValueError("bad cursor")
        return parsed, item_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API made") from None


def page(items: list[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    """Trim a ``limit + 1`` fetch to ``limit`` and make the next cursor from the last kept
    item's ``key(item) -> (time, id)`` when there was more."""
    if len(items) <= limit:
        return items, None
    kept = items[:limit]
    at, item_id = key(kept[-1])
    return kept, encode_cursor(at, item_id)


__all__ = ["Cursor", "PageLimit", "aware", "decode_cursor", "encode_cursor", "page"]
