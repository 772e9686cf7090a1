"""Fixtures for the store: a migrated database on SQLite and on PostgreSQL.

The PostgreSQL variant is an integration test: each test gets its own freshly created
schema (``search_path`` set per connection) that is dropped afterwards. When the server is
unreachable the test is skipped with the reason, which fails the run under ``CI=true``
(``tests/conftest.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tokenwarden.db import make_engine, upgrade

PG_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


def _pg_admin() -> tuple[str, sa.Engine]:
    errors: list[str] = []
    for url in PG_URLS:
        admin = sa.create_engine(
            url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        try:
            with admin.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            admin.dispose()
            errors.append(f"{url}: {str(exc.orig).strip().splitlines()[0]}")
            continue
        return url, admin
    pytest.skip("PostgreSQL unreachable: " + "; ".join(errors))


@contextmanager
def _postgresql() -> Iterator[sa.Engine]:
    url, admin = _pg_admin()
    schema = "tw_" + secrets.token_hex(6)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
    ]
)
def bare_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on an empty database (no migrations run)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/db/tokenwarden.db")
        try:
            yield engine
        finally:
            engine.dispose()
    else:
        with _postgresql() as engine:
            yield engine


@pytest.fixture
def engine(bare_engine: sa.Engine) -> sa.Engine:
    """An engine on a database migrated to head."""
    upgrade(bare_engine)
    return bare_engine


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a migrated database another process can open: a SQLite file, or a fresh
    PostgreSQL schema named in the URL (``?options=-csearch_path=…``)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/db/tokenwarden.db"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    base, admin = _pg_admin()
    schema = "tw_" + secrets.token_hex(6)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{base}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own on the real Redis at 127.0.0.1:6379; its keys are deleted
    afterwards. Skipped (a failure under CI=true) when Redis does not answer."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    prefix = f"tw-test-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
