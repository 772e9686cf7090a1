"""The Kafka runner's command line: ``tokenwarden worker``, added to the main CLI by
``register`` (faust and the Kafka clients are imported only when it runs). ``serve
--broker`` is the API's side (``tokenwarden.cli``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Kafka bootstrap servers as kafka://HOST:PORT[;HOST:PORT] (default: kafka.broker "
        "from the config)",
    ),
]


def worker(
    broker: BrokerOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")] = None,
    partitions: Annotated[
        int | None, typer.Option(min=1, help="partitions of the topics we create")
    ] = None,
    replication: Annotated[
        int | None, typer.Option(min=1, help="replication factor of the topics we create")
    ] = None,
    fetch_wait_ms: Annotated[
        int | None,
        typer.Option(min=1, help="consumer fetch wait (faust's default 1500; see README)"),
    ] = None,
    web_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="serve faust's web/health endpoint")
    ] = None,
) -> None:
    """Run a Kafka worker: faust agents over tokenwarden.audit with partitioned state."""
    from tokenwarden.logs import configure_logging
    from tokenwarden.settings import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    overrides = {
        "broker": broker,
        "partitions": partitions,
        "replication": replication,
        "fetch_wait_ms": fetch_wait_ms,
        "web_port": web_port,
    }
    kafka = settings.kafka.model_validate(
        {
            **settings.kafka.model_dump(),
            **{k: v for k, v in overrides.items() if v is not None},
        }
    )
    if kafka.broker is None:
        typer.echo(
            "error: no broker: pass --broker kafka://HOST:PORT or set kafka.broker", err=True
        )
        raise typer.Exit(2)
    settings = settings.model_copy(update={"kafka": kafka})
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    raise typer.Exit(run_worker(settings))


def run_worker(settings: Any) -> int:
    """Provision the topics, build the worker and run it until a signal stops it."""
    import logging

    import faust

    from tokenwarden.runtime import tune_gc
    from tokenwarden.stream.topics import TopicMismatch, provision
    from tokenwarden.stream.worker import StreamWorker

    kafka = settings.kafka
    level = settings.log_level.upper()
    quiet = "WARNING" if level != "DEBUG" else level
    for name in ("kafka", "aiokafka"):
        logging.getLogger(name).setLevel(quiet)
    try:
        provision(kafka)
    except TopicMismatch as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    datadir = kafka.datadir or tempfile.mkdtemp(prefix="tokenwarden-worker-")
    worker = StreamWorker(settings, datadir=datadir)
    tune_gc()
    try:
        faust.Worker(
            worker.app,
            loglevel=level,
            quiet=True,
            redirect_stdouts=False,
            logging_config=_logging_config(level, quiet),
        ).execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        worker.services.db.dispose()
        if kafka.datadir is None:
            shutil.rmtree(datadir, ignore_errors=True)
    return 0


def _logging_config(level: str, quiet: str) -> dict[str, Any]:
    """faust's (mode's) logging set up with a plain formatter on stderr: mode's own
    formatter re-formats arguments, which our redacting record factory has already
    merged into the message (``tokenwarden.logs``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "level": level,
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {"kafka": {"level": quiet}, "aiokafka": {"level": quiet}},
    }


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the main CLI."""
    app.command("worker")(worker)
