"""The ``tokenwarden`` command line."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from ssf import SsfError, StreamError
from tokenwarden.runtime import tune_gc
from tokenwarden.settings import ConfigError, Settings, load_settings

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, help="Revocation and anomaly detection for agent tokens.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")
ssf_app = typer.Typer(no_args_is_help=True, help="Shared Signals transmitters and streams.")
app.add_typer(ssf_app, name="ssf")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file", exists=False)
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _with_broker(settings: Settings, broker: str) -> Settings:
    """``settings`` with ``kafka.broker`` set from the command line (validated like the
    config file's)."""
    try:
        kafka = settings.kafka.model_validate({**settings.kafka.model_dump(), "broker": broker})
    except ValueError as exc:
        typer.echo(f"error: --broker: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings.model_copy(update={"kafka": kafka})


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="bind port")] = None,
    broker: Annotated[
        str | None,
        typer.Option(
            help="publish accepted events to Kafka (kafka://HOST:PORT[;HOST:PORT]) for "
            "`tokenwarden worker`s instead of detecting in process (default: kafka.broker)"
        ),
    ] = None,
) -> None:
    """Run the embedded service: API + in-process pipeline + SQLite (or PostgreSQL), or,
    with a broker, the API that publishes to Kafka (README, "Running at scale").

    On the first start of a database without API keys, an admin key of every tenant is
    made and printed once, on stderr (never to the log)."""
    from tokenwarden.app import create_app
    from tokenwarden.logs import configure_logging
    from tokenwarden.server import serve_forever

    settings = _settings(config, host=host, port=port)
    if broker is not None:
        settings = _with_broker(settings, broker)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    tune_gc()
    serve_forever(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )


@app.command()
def demo() -> None:
    """Play the stolen-refresh-token story against an in-process service."""
    from tokenwarden.demo import run_demo
    from tokenwarden.logs import configure_logging

    configure_logging(level="warning")
    raise typer.Exit(run_demo())


@app.command()
def replay(
    file: Annotated[
        Path, typer.Argument(help="NDJSON file of AuditEvents", exists=True, dir_okay=False)
    ],
    detections: Annotated[Path | None, typer.Option(help="write detections as NDJSON")] = None,
    orders: Annotated[Path | None, typer.Option(help="write orders as NDJSON")] = None,
    database: Annotated[
        str | None,
        typer.Option(help="database URL to replay into (default: a temporary SQLite file)"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 5000,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="okta | auth0 | keycloak | oidc-provider | native | a "
            "configured mapping (default: detected per record)",
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="tenant for records that name none")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run a file through the same pipeline as fast as it can."""
    from tokenwarden.logs import configure_logging
    from tokenwarden.replay import replay as run_replay
    from tokenwarden.services import build_services

    console = Console(stderr=True)
    with contextlib.ExitStack() as stack:
        if database is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenwarden-replay-"))
            database = f"sqlite:///{Path(tmp) / 'replay.db'}"
        settings = _settings(config, database_url=database)
        configure_logging(level="warning", fmt=settings.log_format)
        services = build_services(settings)
        stack.callback(services.db.dispose)
        tune_gc()
        det_out: BinaryIO | None = (
            stack.enter_context(detections.open("wb")) if detections else None
        )
        ord_out: BinaryIO | None = stack.enter_context(orders.open("wb")) if orders else None
        progress = stack.enter_context(
            Progress(
                TextColumn("replay"),
                BarColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
        )
        task = progress.add_task("replay", total=file.stat().st_size)
        stats = run_replay(
            file,
            stages=services.stages,
            hasher=services.hasher,
            formats=services.formats,
            fmt=format,
            tenant=tenant or settings.ingest.default_tenant,
            detections_out=det_out,
            orders_out=ord_out,
            batch_size=batch_size,
            progress=lambda done: progress.update(task, completed=done),
        )
    rate = stats.events / stats.seconds if stats.seconds else 0.0
    console.print(
        f"{stats.events} events in {stats.seconds:.2f}s ({rate:,.0f} events/s): "
        f"{stats.detections} detections, {stats.orders} orders, {len(stats.rejected)} rejected"
    )
    for r in stats.rejected[:10]:
        console.print(f"  rejected event {r.index}: {r.reason}")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Create or migrate the database schema to the latest version."""
    from tokenwarden.db import make_engine, upgrade

    settings = _settings(config)
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"database at {engine.url.render_as_string(hide_password=True)} is up to date")


def _with_ssf(config: Path | None, action: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``action(db_engine, http_client)`` for an ``ssf`` command; errors exit 1."""
    import asyncio

    import httpx

    from tokenwarden.db import make_engine, upgrade

    engine = make_engine(_settings(config).database_url)

    async def run() -> T:
        async with httpx.AsyncClient(timeout=30) as client:
            return await action(engine, client)

    try:
        upgrade(engine)
        return asyncio.run(run())
    except (ValueError, OSError, SsfError, StreamError, LookupError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@ssf_app.command("connect")
def ssf_connect(
    issuer: Annotated[str, typer.Argument(help="the transmitter's issuer URL")],
    audience: Annotated[str, typer.Option(help="our audience: the aud its SETs must carry")],
    poll: Annotated[
        bool, typer.Option("--poll/--push", help="RFC 8936 poll or RFC 8935 push delivery")
    ] = False,
    push_url: Annotated[
        str | None, typer.Option(help="our /ssf/events URL as the transmitter reaches it")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="bearer token for the transmitter's management API")
    ] = None,
    tenant: Annotated[str, typer.Option(help="tenant its signals belong to")] = "default",
    config: ConfigOpt = None,
) -> None:
    """Discover a transmitter, create a stream for the events we act on, record it."""
    from datetime import UTC, datetime

    from tokenwarden.ssf_connect import connect

    done = _with_ssf(
        config,
        lambda db, client: connect(
            issuer,
            audience=audience,
            db=db,
            client=client,
            token=token,
            poll=poll,
            push_url=push_url,
            tenant=tenant,
            now=datetime.now(UTC),
        ),
    )
    typer.echo(f"connected {done.transmitter.issuer}: stream {done.stream_id} ({done.delivery})")
    typer.echo(f"events delivered: {len(done.events_delivered)}")
    if done.delivery == "push":
        typer.echo("the transmitter now pushes to the given URL with a generated Authorization")
    typer.echo("restart `tokenwarden serve` to start receiving")


@ssf_app.command("status")
def ssf_status(config: ConfigOpt = None) -> None:
    """Each connected stream's status at the transmitter and as recorded here."""
    from datetime import UTC, datetime

    from tokenwarden.ssf_connect import status

    rows = _with_ssf(config, lambda db, client: status(db, client=client, now=datetime.now(UTC)))
    if not rows:
        typer.echo("no streams connected (tokenwarden ssf connect ISSUER --audience AUD)")
    for row in rows:
        remote = row.get("status") or f"unknown ({row.get('error')})"
        typer.echo(
            f"{row['issuer']}  stream {row['stream_id']}  {row['delivery']}  "
            f"status {remote}  verified {row.get('verified_at') or 'never'}"
        )


@ssf_app.command("verify")
def ssf_verify(
    issuer: Annotated[str, typer.Argument(help="a connected transmitter's issuer")],
    wait: Annotated[float, typer.Option(help="seconds to wait for the event")] = 30.0,
    config: ConfigOpt = None,
) -> None:
    """Ask for a verification event and wait until the running service received it."""
    from tokenwarden.ssf_connect import verify

    ok = _with_ssf(
        config, lambda db, client: verify(issuer, db=db, client=client, wait_seconds=wait)
    )
    if not ok:
        typer.echo(f"no verification event with our state arrived from {issuer} in {wait:g}s")
        raise typer.Exit(1)
    typer.echo(f"verified: {issuer} delivered our verification state")


def _register_subcommands() -> None:
    """Commands that live in their own modules: ``simulate``/``evaluate``/``train``, and
    ``revoke``/``kill``/``release``/``alerts``/``audit``, ``keys``, and the Kafka
    ``worker``."""
    from tokenwarden.cli_detectors import register as register_detectors
    from tokenwarden.cli_keys import register as register_keys
    from tokenwarden.cli_revocation import register as register_revocation
    from tokenwarden.stream.cli import register as register_stream

    register_detectors(app)
    register_revocation(app)
    register_keys(app)  # `keys create|list|revoke`
    register_stream(app)  # `worker`


_register_subcommands()


def main() -> None:
    app(prog_name="tokenwarden")


if __name__ == "__main__":
    main()
