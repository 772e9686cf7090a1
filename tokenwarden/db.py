"""The database engine, its migrations, and the instance's generated secrets.

SQLite (one machine, no setup) and PostgreSQL via psycopg 3 (``postgresql+psycopg://``).
On SQLite: WAL journal (readers never block the writer), foreign keys on, a busy timeout
instead of instant "database is locked", connections usable from the pipeline's worker
thread, and SQLAlchemy emitting ``BEGIN`` itself so SAVEPOINTs and transactional DDL work
(the sqlite3 module's legacy transaction control breaks both; see SQLAlchemy's "Enabling
Non-Legacy SQLite Transactional Modes"). ``synchronous`` stays FULL: a committed order
survives a power cut (DESIGN.md, "durable before it is acknowledged").

WAL checkpoints: SQLite copies the WAL back into the database file on the commit that
takes the WAL past ``wal_autocheckpoint`` pages — in the committing thread, with an fsync of
the database file, so every ~20th batch of the pipeline paid 5-8 ms more for its commit.
Connections here checkpoint automatically only past ``SQLITE_WAL_AUTOCHECKPOINT_PAGES`` (a
backstop); the embedded pipeline calls ``checkpoint_wal`` when its queue runs empty, between
batches — run beside a commit, the checkpoint's fsync delayed the commit's just as much.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, select, text
from sqlalchemy.pool import StaticPool

from revocation.tables import instance_secrets
from revocation.upsert import dialect_insert

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: pages (4 KiB) the WAL may reach before a commit checkpoints it itself; SQLite's default
#: is 1,000 (see the module docstring)
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
#: Execution option: how a SQLite transaction begins (``DEFERRED`` unless told otherwise).
SQLITE_BEGIN_OPTION = "tokenwarden_sqlite_begin"
#: ``pg_advisory_xact_lock`` key serialising concurrent migrations ("twmigr" in ASCII).
PG_MIGRATION_LOCK = 0x74776D69677200


def make_engine(
    url: str, *, connect_args: Mapping[str, Any] | None = None, echo: bool = False
) -> Engine:
    """An engine for ``url``, set up for the store (see the module docstring).

    ``connect_args`` go to the DB-API driver, e.g. ``{"options": "-csearch_path=x"}`` for
    psycopg. A file SQLite database's directory is created if missing.
    """
    parsed = make_url(url)
    args: dict[str, Any] = dict(connect_args or {})
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, connect_args=args, echo=echo, pool_pre_ping=True)

    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    args.setdefault("check_same_thread", False)
    args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = create_engine(
        url,
        connect_args=args,
        echo=echo,
        # every connection to ":memory:" would be a different, empty database
        **({"poolclass": StaticPool} if in_memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
            cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES:d}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"{SQLITE_BEGIN_OPTION}={mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def checkpoint_wal(engine: Engine) -> tuple[int, int] | None:
    """``PRAGMA wal_checkpoint(PASSIVE)``: copy what the WAL holds into the database file
    without waiting for readers or writers; returns (WAL frames, frames checkpointed), or
    ``None`` when the database is not a SQLite file in WAL mode (nothing to do)."""
    if engine.dialect.name != "sqlite":
        return None
    # the DB-API connection: outside any transaction (SQLAlchemy's would BEGIN)
    with closing(engine.raw_connection()) as raw, closing(raw.cursor()) as cur:
        cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
        row = cur.fetchone()  # (busy, WAL frames, frames checkpointed)
    if row is None or row[1] < 0:  # not in WAL mode (an in-memory database)
        return None
    return int(row[1]), int(row[2])


def alembic_config() -> Config:
    """Alembic's configuration for our migrations; no ini file needed."""
    cfg = Config()
    # configparser interpolation: a '%' in the path must be doubled
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (``alembic upgrade head``) in one transaction.

    Safe when several processes start at once (the API and the workers): they take turns,
    on PostgreSQL through a transaction-scoped advisory lock, on SQLite by taking the write
    lock up front (``BEGIN IMMEDIATE``), so the later ones find the schema already at head.
    """
    cfg = alembic_config()
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def get_or_create_secret(engine: Engine, *, name: str, factory: Callable[[], str]) -> str:
    """The instance secret ``name``, created with ``factory()`` the first time.

    Race-safe: concurrent first starts both insert-or-ignore, then both read the one row
    that won. ``factory`` is only called when the secret does not exist yet.
    """
    query = select(instance_secrets.c.value).where(instance_secrets.c.name == name)
    with engine.begin() as conn:
        value: str | None = conn.execute(query).scalar_one_or_none()
    if value is not None:
        return value
    with engine.begin() as conn:
        ins = dialect_insert(conn, instance_secrets).values(name=name, value=factory())
        conn.execute(ins.on_conflict_do_nothing(index_elements=[instance_secrets.c.name]))
        stored: str = conn.execute(query).scalar_one()
    return stored


__all__ = [
    "MIGRATIONS",
    "SQLITE_BEGIN_OPTION",
    "alembic_config",
    "get_or_create_secret",
    "make_engine",
    "upgrade",
]
