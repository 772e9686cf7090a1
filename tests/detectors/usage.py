"""Hand-built usage events for the usage detectors' tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from datetime import UTC, datetime, timedelta
from typing import Any

from detectors import Detection, Detector, Engine
from ingest import AuditEvent

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CRM = "https://api.crm.example"
HOME = 64500
AWAY = 64999

_n = 0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(
    seconds: float,
    *,
    action: str = "token.used",
    user: str = "jane@acme.example",
    agent: str | None = "crm-followup",
    client: str = "agent-crm",
    audience: str | None = CRM,
    scopes: Sequence[str] = ("leads:read",),
    asn: int | None = HOME,
    ip: str | None = None,
    ua: str | None = "crm-bot/1.4",
    family: str | None = "fam-1",
    token: str = "at-1",  # noqa: S107
    token_type: str = "access_token",  # noqa: S107
    destination: str | None = "api.crm.example",
    tenant: str = "acme",
    eid: str | None = None,
) -> AuditEvent:
    global _n
    _n += 1
    data: dict[str, Any] = {
        "id": eid or f"u{_n}",
        "time": at(seconds).isoformat(),
        "tenant": tenant,
        "action": action,
        "user": user,
        "client_id": client,
        "scopes": list(scopes),
        "token": {"id": token, "type": token_type, **({"family_id": family} if family else {})},
        "source": {
            **({"asn": asn} if asn is not None else {}),
            "ip": ip or f"203.0.113.{(asn or 0) % 250}",
            **({"user_agent": ua} if ua else {}),
        },
    }
    if agent is not None:
        data["agent"] = agent
    if audience is not None:
        data["audience"] = audience
    if destination is not None:
        data["destination"] = destination
    return AuditEvent.model_validate(data)


def issued(seconds: float, scopes: Sequence[str], **kw: Any) -> AuditEvent:
    kw.setdefault("token", "rt-0")
    kw.setdefault("token_type", "refresh_token")
    return event(seconds, action="token.issued", scopes=scopes, **kw)


def steady(n: int, *, start: float = 0.0, step: float = 60.0, **kw: Any) -> list[AuditEvent]:
    """``n`` ordinary calls ``step`` seconds apart."""
    return [event(start + i * step, **kw) for i in range(n)]


def detect_all(
    detector: Detector, events: Sequence[AuditEvent], state: dict[str, Any]
) -> list[Detection]:
    """Each event through ``detector.detect`` (standalone, no Engine)."""
    out: list[Detection] = []
    for e in events:
        out.extend(detector.detect(e, state, e.time))
    return out


def engine_run(
    engine: Engine, events: Sequence[AuditEvent], state: dict[str, Any]
) -> list[Detection]:
    return engine.process(events, state, max(e.time for e in events))


class Deferred(Executor):
    """An executor that runs what it is given only when told (``run``): a fit "in the
    background" whose end the test chooses."""

    def __init__(self) -> None:
        self.queue: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.queue.append((future, fn, args, kwargs))
        return future

    def run(self) -> None:
        for future, fn, args, kwargs in self.queue:
            try:
                future.set_result(fn(*args, **kwargs))
            except Exception as exc:
                future.set_exception(exc)
        self.queue.clear()
