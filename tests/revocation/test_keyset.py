"""Keyset pages: every row exactly once, newest first, ties on the time broken by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from revocation.sqltypes import UTCDateTime
from revocation.store.keyset import newest_first

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_pages_walk_every_row_once_within_the_window() -> None:
    meta = sa.MetaData()
    rows = sa.Table(
        "rows", meta, sa.Column("id", sa.String, primary_key=True), sa.Column("at", UTCDateTime)
    )
    engine = sa.create_engine("sqlite://")
    meta.create_all(engine)
    # three rows share each second: the id orders them
    data = [{"id": f"r{i:02d}", "at": T0 + timedelta(seconds=i // 3)} for i in range(12)]
    with engine.begin() as conn:
        conn.execute(rows.insert(), data)
        since, until = T0 + timedelta(seconds=1), T0 + timedelta(seconds=4)
        seen: list[str] = []
        before = None
        while True:
            page = conn.execute(
                newest_first(
                    sa.select(rows.c.id, rows.c.at),
                    at=rows.c.at,
                    id_=rows.c.id,
                    since=since,
                    until=until,
                    before=before,
                    limit=2,
                )
            ).all()
            if not page:
                break
            seen += [r.id for r in page]
            before = (page[-1].at, page[-1].id)
    expected = sorted(
        (d for d in data if since <= d["at"] < until), key=lambda d: (d["at"], d["id"])
    )
    assert seen == [d["id"] for d in reversed(expected)]
    assert len(seen) == 9
