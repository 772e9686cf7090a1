"""Alembic environment: the store's tables, on the connection we are given.

``tokenwarden.db.upgrade`` passes its connection in ``config.attributes["connection"]``.
The ``alembic`` command line uses ``tokenwarden/migrations/alembic.ini`` and its
``sqlalchemy.url``, or ``-x url=…``, e.g. to write the next migration::

    alembic -c tokenwarden/migrations/alembic.ini -x url=sqlite:///./dev.db upgrade head
    alembic -c tokenwarden/migrations/alembic.ini -x url=sqlite:///./dev.db revision \
        --autogenerate -m "what changed"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from revocation.tables import metadata
from tokenwarden.db import make_engine

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: later migrations copy-and-move tables
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str | None:
    """``alembic -x url=…`` wins over the ini file's ``sqlalchemy.url``."""
    given: str | None = context.get_x_argument(as_dictionary=True).get("url")
    return given or config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    url = _url()
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
