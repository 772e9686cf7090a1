"""``tokenwarden keys``: create, list and revoke API keys (``tokenwarden.auth.api_keys``).

The command line works on the database directly — whoever can run it with the
configuration can read the store anyway — so it is also how to get back in after losing
every admin key: ``tokenwarden keys create --global --scope admin``. ``create`` prints the
key once, on stdout (for ``$(…)`` capture); the store keeps its hash.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file", exists=False)
]


def _engine(config: Path | None) -> Any:
    from tokenwarden.db import make_engine, upgrade
    from tokenwarden.settings import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return engine


@keys_app.command("create")
def create(
    scope: Annotated[
        list[str],
        typer.Option("--scope", "-s", help="ingest | check | metrics | admin (repeatable)"),
    ],
    tenant: Annotated[str | None, typer.Option(help="the tenant the key belongs to")] = None,
    global_: Annotated[
        bool, typer.Option("--global", help="an admin key of every tenant (instead of --tenant)")
    ] = False,
    role: Annotated[
        str | None,
        typer.Option(help="viewer | responder | admin, for an admin-scoped key (default admin)"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="what the key is for")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a key and print it — once; it cannot be shown again."""
    from revocation.txn import writing
    from tokenwarden.auth.api_keys import ApiKeyError, create_key

    if (tenant is None) == (not global_):
        typer.echo("error: give --tenant T, or --global for an admin key of every tenant", err=True)
        raise typer.Exit(2)
    engine = _engine(config)
    try:
        with writing(engine) as conn:
            issued = create_key(
                conn,
                tenant=tenant,
                scopes=scope,
                role=role,
                name=name,
                actor=f"cli:{getpass.getuser()}",
                now=datetime.now(UTC),
            )
    except ApiKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    v = issued.view
    typer.echo(
        f"created key {v.id} (tenant {v.tenant or 'every tenant'}, scopes "
        f"{','.join(v.scopes)}{', role ' + v.role if v.role else ''}); it is shown once:",
        err=True,
    )
    typer.echo(issued.key)


@keys_app.command("list")
def list_(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None,
    all_: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
    config: ConfigOpt = None,
) -> None:
    """List keys: id, tenant, scopes, role, created, revoked — never a secret."""
    from tokenwarden.auth.api_keys import list_keys

    engine = _engine(config)
    try:
        with engine.connect() as conn:
            found = list_keys(conn, tenant=tenant, include_revoked=all_)
    finally:
        engine.dispose()
    if not found:
        typer.echo("no keys")
    for k in found:
        revoked = f"  revoked {k.revoked_at.isoformat()}" if k.revoked_at else ""
        typer.echo(
            f"{k.id}  {k.tenant or '*'}  {','.join(k.scopes)}"
            f"{'  ' + k.role if k.role else ''}  created {k.created_at.isoformat()} "
            f"by {k.created_by}{'  ' + k.name if k.name else ''}{revoked}"
        )


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (the part after twk_)")],
    config: ConfigOpt = None,
) -> None:
    """Revoke a key. A running service refuses it within its key cache time (5 s)."""
    from revocation.txn import writing
    from tokenwarden.auth.api_keys import revoke_key

    engine = _engine(config)
    try:
        with writing(engine) as conn:
            found = revoke_key(
                conn, key_id=key_id, actor=f"cli:{getpass.getuser()}", now=datetime.now(UTC)
            )
    finally:
        engine.dispose()
    if found is None:
        typer.echo(f"error: no key {key_id!r}", err=True)
        raise typer.Exit(1)
    assert found.revoked_at is not None
    typer.echo(f"key {key_id} revoked at {found.revoked_at.isoformat()}")


def register(app: typer.Typer) -> None:
    """Add ``keys`` to the ``tokenwarden`` CLI."""
    app.add_typer(keys_app, name="keys")
