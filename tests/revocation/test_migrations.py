"""The migrations create exactly the schema ``revocation.tables`` describes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from revocation.tables import families, instance_secrets, metadata
from tokenwarden.db import alembic_config, get_or_create_secret, make_engine, upgrade

EXPECTED_TABLES = {
    "instance_secrets",
    "families",
    "tokens",
    "detections",
    "orders",
    "kill_switches",
    "audit_log",
    "detector_state",
    "detector_models",
    "ssf_jti",
    "ssf_streams",
    "outbox",
    "alerts",
    "audit_head",
    "api_keys",
    "policy_config",
}


def test_metadata_declares_the_expected_tables() -> None:
    assert set(metadata.tables) == EXPECTED_TABLES


def test_upgrade_creates_every_table(engine: sa.Engine) -> None:
    assert set(sa.inspect(engine).get_table_names()) == EXPECTED_TABLES | {"alembic_version"}


def test_migrated_schema_matches_the_tables_module(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_reaches_head(engine: sa.Engine) -> None:
    upgrade(engine)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    assert head == "0005"
    assert current == head


def test_concurrent_first_starts_migrate_once(bare_engine: sa.Engine) -> None:
    """The API and a worker starting together on an empty database take turns."""
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait(timeout=30)
        try:
            upgrade(bare_engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert set(sa.inspect(bare_engine).get_table_names()) == EXPECTED_TABLES | {"alembic_version"}


def test_downgrade_to_base_removes_every_table(engine: sa.Engine) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}


def test_sqlite_engine_is_set_up_for_the_store(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "tw.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert path.exists()
    finally:
        engine.dispose()


def test_sqlite_savepoints_roll_back_inside_the_transaction(tmp_path: Path) -> None:
    """Without SQLAlchemy emitting BEGIN, sqlite3 would autocommit around a SAVEPOINT."""
    engine = make_engine(f"sqlite:///{tmp_path}/tw.db")
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(instance_secrets), {"name": "a", "value": "1"})
            nested = conn.begin_nested()
            conn.execute(sa.insert(instance_secrets), {"name": "b", "value": "2"})
            nested.rollback()
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT name FROM instance_secrets")).scalars().all()
        assert names == ["a"]
    finally:
        engine.dispose()


def test_datetimes_are_stored_in_utc_and_read_back_aware(engine: sa.Engine) -> None:
    cet = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 23, 9, 30, tzinfo=cet)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(families),
            {"tenant": "t", "family_id": "f", "created_at": local, "last_seen_at": local},
        )
    with engine.connect() as conn:
        got = conn.execute(sa.select(families.c.created_at)).scalar_one()
    assert got == local
    assert got.tzinfo is UTC
    assert got.hour == 8


def test_naive_datetimes_are_refused(engine: sa.Engine) -> None:
    naive = datetime(2026, 11, 23, 8, 0)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(
            sa.insert(families),
            {"tenant": "t", "family_id": "f", "created_at": naive, "last_seen_at": naive},
        )


def test_get_or_create_secret_is_stable(engine: sa.Engine) -> None:
    calls: list[int] = []

    def factory() -> str:
        calls.append(1)
        return f"secret-{len(calls)}"

    first = get_or_create_secret(engine, name="token_hash_key", factory=factory)
    second = get_or_create_secret(engine, name="token_hash_key", factory=factory)
    other = get_or_create_secret(engine, name="other", factory=lambda: "other-value")
    assert first == second == "secret-1"
    assert calls == [1]
    assert other == "other-value"


def test_get_or_create_secret_keeps_the_first_writer(engine: sa.Engine) -> None:
    """A racing first start whose insert loses reads the winner's value."""

    def racing_factory() -> str:
        # another process stores its secret between our read and our insert
        with engine.begin() as conn:
            conn.execute(sa.insert(instance_secrets), {"name": "k", "value": "winner"})
        return "loser"

    assert get_or_create_secret(engine, name="k", factory=racing_factory) == "winner"
