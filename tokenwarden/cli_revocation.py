"""The executor's commands: manual orders, kill switches, alerts, the audit trail.

``register(app)`` adds them to the ``tokenwarden`` command line (``tokenwarden.cli``).
Manual actions are audited with the actor: ``--actor``, else ``cli:<the OS user>``. After
recording an order (and applying it to the store) the command delivers it to the other
adapters itself, waiting at most ``--wait`` seconds; whatever is left is delivered by the
running service's dispatcher.
"""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file", exists=False)
]
ActorOpt = Annotated[
    str | None, typer.Option(help="who is acting, for the audit trail (default: cli:$USER)")
]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="why (required; audited)")]
TenantOpt = Annotated[str | None, typer.Option(help="the tenant the target belongs to")]
WaitOpt = Annotated[
    float, typer.Option(help="seconds to spend delivering to the adapters (0: leave it)")
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _actor(actor: str | None) -> str:
    return actor or f"cli:{getpass.getuser()}"


def _settings(config: Path | None) -> Any:
    from tokenwarden.settings import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


def _engine(settings: Any) -> Any:
    from tokenwarden.db import make_engine, upgrade

    engine = make_engine(settings.database_url)
    upgrade(engine)
    return engine


def _deliver(settings: Any, engine: Any, order_id: str, wait: float) -> None:
    """Run dispatcher passes in-process until the order's deliveries are done, have failed
    (and wait for their retry), or ``wait`` seconds are up."""
    import time

    import httpx

    from revocation import store
    from tokenwarden.revocation_runtime import build_dispatcher

    async def run() -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            dispatcher = build_dispatcher(settings.revocation, db=engine, http=http)
            deadline = time.monotonic() + wait
            try:
                while time.monotonic() < deadline:
                    await dispatcher.run_once()
                    with engine.connect() as conn:
                        states = {d.state for d in store.deliveries(conn, order_id=order_id)}
                    if states <= {"delivered", "failed"}:
                        return
                    await asyncio.sleep(0.05)
            finally:
                await dispatcher.aclose()

    if wait > 0:
        asyncio.run(run())


def _show(engine: Any, order_id: str) -> None:
    from revocation import store

    with engine.connect() as conn:
        order = store.get_order(conn, order_id=order_id)
        deliveries = store.deliveries(conn, order_id=order_id)
    if order is None:
        raise _fail(f"no order {order_id!r}")
    t = order.target
    typer.echo(
        f"order {order.id}  {order.action.value} {t.kind.value} {t.value} (tenant {t.tenant})"
    )
    typer.echo(f"  status {order.status.value}  mode {order.mode.value}  rule {order.rule}")
    typer.echo(f"  by {order.actor}: {order.reason}")
    if order.affected:
        typer.echo("  affected " + ", ".join(f"{k} {v}" for k, v in order.affected.items()))
    if order.action.value == "kill_switch":
        typer.echo(f"  kill switch {order.kill_switch_thrown}")
    for d in deliveries:
        line = f"  -> {d.adapter:<20} {d.state:<10} attempts {d.attempts}"
        if d.last_error:
            line += f"  last error: {d.last_error[:120]}  next {d.next_attempt_at.isoformat()}"
        typer.echo(line)


def _submit(settings: Any, order: Any, wait: float) -> None:
    from revocation import store
    from tokenwarden.revocation_runtime import build_routing

    engine = _engine(settings)
    try:
        (outcome,) = store.execute_orders(
            engine,
            orders=[order],
            now=datetime.now(UTC),
            routing=build_routing(settings.revocation),
        )
        if outcome.error:
            typer.echo(f"warning: the store did not apply it yet: {outcome.error}", err=True)
        _deliver(settings, engine, outcome.order_id, wait)
        _show(engine, outcome.order_id)
    finally:
        engine.dispose()


def revoke(
    kind: Annotated[
        str, typer.Argument(help="family | token | user | agent | client | session | tenant")
    ],
    target: Annotated[str, typer.Argument(metavar="ID", help="what to revoke")],
    reason: ReasonOpt,
    tenant: TenantOpt = None,
    actor: ActorOpt = None,
    wait: WaitOpt = 10.0,
    config: ConfigOpt = None,
) -> None:
    """Revoke a token family (or a token, or every family a user/agent/client/session holds)."""
    _manual("revoke", kind, target, reason, tenant, actor, wait, config)


def kill(
    kind: Annotated[str, typer.Argument(help="user | agent | client | tenant | session")],
    target: Annotated[str, typer.Argument(metavar="ID", help="what to cut off")],
    reason: ReasonOpt,
    tenant: TenantOpt = None,
    actor: ActorOpt = None,
    wait: WaitOpt = 10.0,
    config: ConfigOpt = None,
) -> None:
    """Throw a kill switch: deny everything of a user, agent, client, session or tenant —
    families issued later included — until released."""
    _manual("kill_switch", kind, target, reason, tenant, actor, wait, config)


def _manual(
    action: str,
    kind: str,
    target: str,
    reason: str,
    tenant: str | None,
    actor: str | None,
    wait: float,
    config: Path | None,
) -> None:
    from revocation.manual import ManualOrderError, manual_order
    from revocation.order import Action, TargetKind

    try:
        target_kind = TargetKind(kind)
    except ValueError:
        raise _fail(f"unknown target kind {kind!r}", 2) from None
    if target_kind == TargetKind.TENANT:
        tenant = tenant or target
    if tenant is None:
        raise _fail(f"say which tenant the {kind} belongs to: --tenant T", 2)
    settings = _settings(config)
    try:
        order = manual_order(
            action=Action(action),
            kind=target_kind,
            value=target,
            tenant=tenant,
            reason=reason,
            actor=_actor(actor),
            now=datetime.now(UTC),
        )
    except ManualOrderError as exc:
        raise _fail(str(exc), 2) from None
    _submit(settings, order, wait)


def release(
    kill_switch_id: Annotated[str, typer.Argument(metavar="KILL_ID", help="the kill switch id")],
    reason: ReasonOpt,
    actor: ActorOpt = None,
    wait: WaitOpt = 10.0,
    config: ConfigOpt = None,
) -> None:
    """Release a kill switch (a reason is required; audited with the actor)."""
    from revocation.manual import ManualOrderError, release_order

    settings = _settings(config)
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            order = release_order(
                conn,
                kill_switch_id=kill_switch_id,
                reason=reason,
                actor=_actor(actor),
                now=datetime.now(UTC),
            )
    except ManualOrderError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    _submit(settings, order, wait)


orders_app = typer.Typer(no_args_is_help=True, help="Revocation orders and their deliveries.")
alerts_app = typer.Typer(no_args_is_help=True, help="On-call alerts.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail.")


@orders_app.command("show")
def orders_show(order_id: str, config: ConfigOpt = None) -> None:
    """An order: status, what it affected, its delivery to each adapter."""
    engine = _engine(_settings(config))
    try:
        _show(engine, order_id)
    finally:
        engine.dispose()


@orders_app.command("summary")
def orders_summary(
    dry_run: Annotated[bool, typer.Option("--dry-run/--enforce")] = True,
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
) -> None:
    """What dry-run orders would have done ("would have revoked N families"), per rule."""
    from revocation import store
    from revocation.order import Mode

    engine = _engine(_settings(config))
    try:
        with engine.connect() as conn:
            s = store.summarize(conn, mode=Mode.DRY_RUN if dry_run else Mode.ENFORCE, tenant=tenant)
    finally:
        engine.dispose()
    verb = "would have revoked" if dry_run else "revoked"
    typer.echo(
        f"{s.orders} orders {verb} {s.families} families ({s.tokens} tokens), "
        f"{s.kill_switches} kill switches"
    )
    for rule, b in sorted(s.by_rule.items()):
        typer.echo(
            f"  {rule}: {b['orders']} orders, {b['families']} families, {b['tokens']} tokens"
        )


def switches(
    tenant: TenantOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="released ones too")] = False,
    config: ConfigOpt = None,
) -> None:
    """Kill switches (active ones unless --all)."""
    from revocation import store

    engine = _engine(_settings(config))
    try:
        with engine.connect() as conn:
            found = store.list_switches(conn, tenant=tenant, active=not all_, limit=1000)
    finally:
        engine.dispose()
    for s in found:
        state = f"released {s.released_at.isoformat()}" if s.released_at else "active"
        typer.echo(f"{s.id}  {s.tenant} {s.kind} {s.value}  {state}  ({s.reason})")
    if not found:
        typer.echo("no kill switches")


@alerts_app.command("list")
def alerts_list(
    all_: Annotated[bool, typer.Option("--all", help="acknowledged ones too")] = False,
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Alerts, newest first (unacknowledged ones unless --all)."""
    from revocation import store

    engine = _engine(_settings(config))
    try:
        with engine.connect() as conn:
            found = store.list_alerts(conn, tenant=tenant, unacknowledged=not all_)
    finally:
        engine.dispose()
    for a in found:
        ack = f"acked by {a.acknowledged_by}" if a.acknowledged_by else "unacknowledged"
        typer.echo(
            f"{a.id}  {a.entity}  {a.status}  x{a.count}  {a.rule}  order {a.order_id}  {ack}"
        )
    if not found:
        typer.echo("no alerts")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: str,
    note: Annotated[str | None, typer.Option(help="a note for the trail")] = None,
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Acknowledge an alert (audited with the actor)."""
    from revocation import store
    from revocation.txn import writing

    engine = _engine(_settings(config))
    try:
        with writing(engine) as conn:
            alert = store.acknowledge(
                conn, alert_id=alert_id, actor=_actor(actor), note=note, now=datetime.now(UTC)
            )
    finally:
        engine.dispose()
    if alert is None:
        raise _fail(f"no alert {alert_id!r}")
    typer.echo(f"{alert.id} acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at}")


@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None) -> None:
    """Recompute the audit trail's hash chain; name the first broken link (exit 1)."""
    from revocation import store

    engine = _engine(_settings(config))
    try:
        with engine.connect() as conn:
            report = store.verify_chain(conn)
    finally:
        engine.dispose()
    if not report.ok:
        typer.echo(f"BROKEN at row {report.broken_seq}: {report.problem}", err=True)
        typer.echo(f"({report.rows} rows before it verified)", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {report.rows} rows, chain head {report.head_seq} {report.head_hash}")


@audit_app.command("tail")
def audit_tail(
    ref: Annotated[str | None, typer.Option(help="only rows about this id")] = None,
    limit: int = 20,
    config: ConfigOpt = None,
) -> None:
    """The newest audit rows."""
    from revocation import store

    engine = _engine(_settings(config))
    try:
        with engine.connect() as conn:
            rows = store.list_audit(conn, ref=ref, limit=limit)
    finally:
        engine.dispose()
    for r in reversed(rows):
        typer.echo(f"{r.seq:>6} {r.at.isoformat()} {r.actor:<24} {r.kind:<22} {r.ref or ''}")


def register(app: typer.Typer) -> None:
    """Add the executor's commands to the ``tokenwarden`` CLI."""
    app.command()(revoke)
    app.command()(kill)
    app.command()(release)
    app.command()(switches)
    app.add_typer(orders_app, name="orders")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(audit_app, name="audit")
