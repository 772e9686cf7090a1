"""Builders for the store tests: events, detections, orders, and a statement counter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from detectors.detection import Detection, Severity
from ingest import AuditEvent
from revocation.order import Action, Mode, RevocationOrder, Target, TargetKind

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
TENANT = "acme"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def token_event(
    action: str,
    *,
    token_id: str | None,
    family: str | None = "fam-1",
    parent: str | None = None,
    seconds: float = 0.0,
    tenant: str = TENANT,
    user: str | None = "jane@acme.example",
    agent: str | None = "crm-followup",
    client_id: str | None = "agent-crm",
    session: str | None = None,
    kind: str | None = "refresh_token",
) -> AuditEvent:
    token: dict[str, Any] = {"type": kind}
    if token_id is not None:
        token["id"] = token_id
    if parent is not None:
        token["parent_id"] = parent
    if family is not None:
        token["family_id"] = family
    data: dict[str, Any] = {
        "time": at(seconds).isoformat(),
        "tenant": tenant,
        "action": action,
        "user": user,
        "agent": agent,
        "client_id": client_id,
        "token": token,
    }
    if session is not None:
        data["attributes"] = {"session_id": session}
    return AuditEvent.model_validate(data)


def issued(token_id: str, **kw: Any) -> AuditEvent:
    return token_event("token.issued", token_id=token_id, **kw)


def refreshed(parent: str, child: str, **kw: Any) -> AuditEvent:
    return token_event("token.refreshed", token_id=child, parent=parent, **kw)


def chain(family: str, n: int, *, tenant: str = TENANT, **kw: Any) -> list[AuditEvent]:
    """A family of ``n`` tokens: one issued, then ``n - 1`` rotations."""
    events = [issued(f"{family}-t0", family=family, tenant=tenant, **kw)]
    for i in range(1, n):
        events.append(
            refreshed(
                f"{family}-t{i - 1}",
                f"{family}-t{i}",
                family=family,
                tenant=tenant,
                seconds=float(i),
                **kw,
            )
        )
    return events


def detection(
    *,
    family: str | None = "fam-1",
    detector: str = "refresh_reuse",
    seconds: float = 0.0,
    severity: Severity = Severity.CRITICAL,
    event_id: str = "evt-1",
    tenant: str = TENANT,
    reason: str = "token fam-1-t0 presented again",
) -> Detection:
    entity = f"{tenant}/family/{family}"
    return Detection(
        id=Detection.make_id(detector, entity, (event_id,)),
        detector=detector,
        entity=entity,
        tenant=tenant,
        score=1.0,
        severity=severity,
        reason=reason,
        evidence={"family_id": family},
        event_ids=(event_id,),
        time=at(seconds),
        user="jane@acme.example",
        agent="crm-followup",
        client_id="agent-crm",
        family_id=family,
    )


def order(
    kind: TargetKind,
    value: str,
    *,
    action: Action = Action.REVOKE,
    mode: Mode = Mode.ENFORCE,
    cause: str = "refresh_reuse",
    tenant: str = TENANT,
    seconds: float = 100.0,
    reason: str = "refresh token reuse: token t0 presented again",
) -> RevocationOrder:
    return RevocationOrder.create(
        target=Target(kind=kind, tenant=tenant, value=value),
        action=action,
        cause=cause,
        reason=reason,
        detection_ids=("det-1",),
        now=at(seconds),
        mode=mode,
        rule="test-rule",
    )


class StatementLog:
    """The SQL statements an engine sent to the driver while recording."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        #: per statement: whether it went as an ``executemany`` (one execution per row)
        self.many: list[bool] = []

    def __len__(self) -> int:
        return len(self.statements)

    def record(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        self.statements.append(statement)
        self.many.append(many)


@contextmanager
def count_statements(engine: sa.Engine) -> Iterator[StatementLog]:
    """Record every statement (``before_cursor_execute``) sent while the block runs."""
    log = StatementLog()
    sa_event.listen(engine, "before_cursor_execute", log.record)
    try:
        yield log
    finally:
        sa_event.remove(engine, "before_cursor_execute", log.record)


def scalar(engine: sa.Engine, query: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def rows(engine: sa.Engine, query: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(query))


def snapshot(engine: sa.Engine, *tables: sa.Table) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables``, in primary-key order, for before/after comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in tables:
            query = sa.select(table).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(query)]
    return out
