"""The detector commands: ``simulate``, ``evaluate`` and ``train`` (added to the main CLI
by ``register``)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from tokenwarden.runtime import tune_gc


def simulate(
    out: Annotated[Path, typer.Option("--out", help="NDJSON file of AuditEvents to write")],
    labels: Annotated[Path, typer.Option("--labels", help="labels JSON file to write")],
    minutes: Annotated[float, typer.Option(min=30, help="minutes of traffic")] = 180.0,
    tenants: Annotated[int, typer.Option(min=1, help="tenants")] = 2,
    agents: Annotated[int, typer.Option(min=1, max=11, help="agents per tenant")] = 4,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same bytes)")] = 1,
    attacks: Annotated[
        str | None,
        typer.Option(help="comma-separated attack kinds (default: all of them)"),
    ] = None,
    per_tenant: Annotated[int, typer.Option(min=0, help="attacks of each kind per tenant")] = 2,
) -> None:
    """Write realistic, labelled agent traffic (benign scenarios and attacks)."""
    from tokenwarden.simulate import ATTACK_KINDS, SimConfig, write
    from tokenwarden.simulate import simulate as run_simulation

    kinds = ATTACK_KINDS if attacks is None else tuple(k.strip() for k in attacks.split(",") if k)
    try:
        config = SimConfig(
            minutes=minutes,
            tenants=tenants,
            agents=agents,
            seed=seed,
            attacks=kinds,
            attacks_per_tenant=per_tenant,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    events, label_data = run_simulation(config)
    write(events, label_data, out, labels)
    typer.echo(
        f"{len(events)} events ({label_data['attack_events']} in {len(label_data['attacks'])} "
        f"attacks) -> {out}; labels -> {labels}"
    )


def evaluate(
    file: Annotated[
        Path, typer.Argument(help="NDJSON file of AuditEvents", exists=True, dir_okay=False)
    ],
    labels: Annotated[
        Path, typer.Argument(help="labels JSON (tokenwarden simulate)", exists=True, dir_okay=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="exit 1 when the targets are not met")
    ] = False,
    database: Annotated[
        str | None, typer.Option(help="database URL (default: a temporary SQLite file)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 5000,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")] = None,
) -> None:
    """Replay labelled traffic through the pipeline; detection rate, delay, false alarms."""
    from tokenwarden.cli import _settings
    from tokenwarden.evaluate import render, run_evaluation
    from tokenwarden.logs import configure_logging
    from tokenwarden.services import build_services

    label_data = orjson.loads(labels.read_bytes())
    with contextlib.ExitStack() as stack:
        if database is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenwarden-eval-"))
            database = f"sqlite:///{Path(tmp) / 'evaluate.db'}"
        settings = _settings(config, database_url=database)
        configure_logging(level="warning", fmt=settings.log_format)
        services = build_services(settings)
        stack.callback(services.db.dispose)
        tune_gc()
        result = run_evaluation(
            file,
            label_data,
            stages=services.stages,
            hasher=services.hasher,
            batch_size=batch_size,
        )
    if as_json:
        sys.stdout.write(orjson.dumps(result.report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        Console(highlight=False).print(render(result.report), markup=False)
    if check and not result.targets_met:
        raise typer.Exit(1)


def train(
    source: Annotated[
        Path | None,
        typer.Option("--from", help="NDJSON history of AuditEvents", exists=True, dir_okay=False),
    ] = None,
    from_store: Annotated[
        bool,
        typer.Option(
            "--from-store",
            help="refit each stored model (saved by the service) from the rows it was fitted on",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="model file to write (default tokenwarden-model.npz)"),
    ] = None,
    to_store: Annotated[
        bool,
        typer.Option(
            "--store",
            help="save the models in the configured database (loaded at the service's start)",
        ),
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")] = None,
) -> None:
    """Fit the learned-outlier model (one forest per tenant) from history and save it.

    --from FILE writes a file (--out) unless --store is given; --from-store saves back to
    the store, and to a file with --out."""
    from tokenwarden.cli import _settings
    from tokenwarden.db import make_engine, upgrade
    from tokenwarden.learned_models import save_to_store
    from tokenwarden.train import train as run_training
    from tokenwarden.train import train_from_store

    if (source is not None) == from_store:  # neither, or both
        typer.echo("error: give either --from FILE or --from-store", err=True)
        raise typer.Exit(2)
    settings = _settings(config)
    tune_gc()
    db = None
    if from_store or to_store:
        db = make_engine(settings.database_url)
        upgrade(db)
    if source is not None:
        result, artifact = run_training(source, params=settings.detectors)
        typer.echo(f"{result.events} events replayed ({result.rejected} rejected)")
        if out is None and not to_store:
            out = Path("tokenwarden-model.npz")
    else:
        assert db is not None
        result, artifact = train_from_store(db, params=settings.detectors)
        to_store = True
        for tenant, error in sorted(result.unreadable.items()):
            typer.echo(f"  {tenant}: stored model not readable ({error}), skipped")
    for tenant, rows in sorted(result.tenants.items()):
        typer.echo(f"  {tenant}: trained on {rows} clean rows")
    for tenant in result.skipped:
        typer.echo(f"  {tenant}: too few clean rows ({result.rows[tenant]}), not trained")
    if not result.tenants:
        typer.echo("error: no tenant had enough history to train", err=True)
        raise typer.Exit(1)
    if out is not None:
        artifact.save(out)
        typer.echo(f'model saved to {out}; load it with [detectors.model] path = "{out}"')
    if to_store and db is not None:
        written = save_to_store(db, artifact, now=datetime.now(UTC))
        for tenant in sorted(set(artifact.tenants) - set(written)):
            typer.echo(f"  {tenant}: the store holds a newer model, kept")
        typer.echo(
            f"{len(written)} model(s) saved to the store; the service loads them at its next start"
        )


def register(app: typer.Typer) -> None:
    """Add ``simulate``, ``evaluate`` and ``train`` to the main command line."""
    app.command("simulate")(simulate)
    app.command("evaluate")(evaluate)
    app.command("train")(train)
