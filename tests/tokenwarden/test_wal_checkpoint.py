"""SQLite WAL checkpoints happen between the pipeline's batches, not inside their commits
(``tokenwarden.db``, ``EmbeddedPipeline.checkpoint_interval``).

What a checkpoint does is visible on disk: until one runs, committed pages live only in the
``-wal`` file and the database file itself does not change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from ingest import AuditEvent
from tokenwarden.db import SQLITE_WAL_AUTOCHECKPOINT_PAGES, checkpoint_wal, make_engine
from tokenwarden.pipeline import EmbeddedPipeline
from tokenwarden.services import build_services
from tokenwarden.settings import Settings


def _events(n: int) -> list[AuditEvent]:
    t = datetime(2026, 11, 23, 9, 0, tzinfo=UTC).timestamp()
    return [
        AuditEvent.model_validate(
            {
                "id": f"e{i}",
                "time": t + i,
                "tenant": "acme",
                "action": "token.used",
                "user": "jane",
                "agent": "crm",
                "audience": "https://api.crm.example",
                "scopes": ["crm:read"],
                "token": {"id": f"at-{i}", "family_id": "fam-1", "type": "access_token"},
            }
        )
        for i in range(n)
    ]


async def _database_file_changed(db: Path, checkpoint_interval: float) -> bool:
    """Commit four batches through the pipeline; whether the database file changed."""
    services = build_services(Settings(database_url=f"sqlite:///{db}"))
    pipeline = EmbeddedPipeline(
        services.stages, max_batches=8, checkpoint_interval=checkpoint_interval
    )
    await asyncio.to_thread(checkpoint_wal, services.db)  # start from a checkpointed file
    before = db.read_bytes()
    await pipeline.start()
    try:
        for k in range(4):
            await pipeline.submit(_events(50 * (k + 1))[50 * k :])
    finally:
        await pipeline.stop()
    # compared before the engine is disposed: closing the last connection checkpoints
    changed = db.read_bytes() != before
    services.db.dispose()
    return changed


def test_the_idle_pipeline_checkpoints_the_wal(tmp_path: Path) -> None:
    changed = asyncio.run(_database_file_changed(tmp_path / "eager.db", 0.0))
    assert changed, "the pipeline went idle with checkpoint_interval=0 but never checkpointed"


def test_commits_alone_leave_the_database_file_untouched(tmp_path: Path) -> None:
    """Without the pipeline's checkpoint (interval far away) the commits do not checkpoint
    the WAL themselves: it is far below the backstop of SQLITE_WAL_AUTOCHECKPOINT_PAGES."""
    assert not asyncio.run(_database_file_changed(tmp_path / "lazy.db", 3600.0))


def test_checkpoint_wal_reports_frames_and_is_a_no_op_without_a_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == SQLITE_WAL_AUTOCHECKPOINT_PAGES
    result = checkpoint_wal(engine)
    assert result is not None
    frames, done = result
    assert frames > 0
    assert done == frames  # nothing else reads or writes: all of it is copied back
    engine.dispose()
    memory = make_engine("sqlite://")
    assert checkpoint_wal(memory) is None
    memory.dispose()
