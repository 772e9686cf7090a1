"""The Engine's per-action dispatch of plain detectors (``accepts``) and the Observation's
copies of the event's fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from detectors import (
    Detection,
    Engine,
    Observation,
    RefreshReuseDetector,
    SignalDetector,
)
from detectors.features import agent_key
from ingest import AuditEvent
from tests.detectors.usage import engine_run, event, issued


class Recording:
    """A plain detector that records the actions it was given."""

    name: ClassVar[str] = "recording"

    def __init__(self, only: str | None = None) -> None:
        self.seen: list[str] = []
        if only is not None:
            self.accepts = lambda action: action == only

    def detect(self, event: AuditEvent, state: Any, now: datetime) -> list[Detection]:
        self.seen.append(event.action)
        return []

    def sweep(self, state: Any, now: datetime) -> int:
        return 0


def _mixed() -> list[AuditEvent]:
    return [
        issued(0, ["leads:read"]),
        event(1),
        event(2, action="token.refreshed", token="rt-1", token_type="refresh_token"),
        event(3, action="ssf.session_revoked"),
        event(4),
    ]


def test_plain_detectors_get_only_the_actions_they_accept() -> None:
    every = Recording()
    picky = Recording(only="token.used")
    engine = Engine([every, picky])
    engine_run(engine, _mixed(), {})
    engine_run(engine, _mixed(), {})  # the second batch goes through the action cache
    actions = [e.action for e in _mixed()] * 2
    assert every.seen == actions
    assert picky.seen == [a for a in actions if a == "token.used"]


def test_builtin_accepts_covers_every_action_detect_acts_on() -> None:
    """What ``accepts`` refuses, ``detect`` would have ignored: no detection, no state."""
    for detector in (RefreshReuseDetector(), SignalDetector()):
        for e in _mixed():
            state: dict[str, Any] = {}
            found = detector.detect(e, state, e.time)
            if not detector.accepts(e.action):
                assert found == [] and state == {}, (detector.name, e.action)
        assert not detector.accepts("token.used")
    assert RefreshReuseDetector.accepts("token.refreshed")
    assert RefreshReuseDetector.accepts("auth.failed")
    assert SignalDetector.accepts("ssf.credential_compromise")


def test_observation_copies_the_event() -> None:
    e = event(5, agent=None, client="agent-crm", asn=None, ip="198.51.100.7", ua=None)
    obs = Observation(e)
    assert obs.t == e.time.timestamp()
    assert (obs.tenant, obs.user, obs.action, obs.audience) == (
        e.tenant,
        e.user,
        e.action,
        e.audience,
    )
    assert (obs.scopes, obs.outcome, obs.destination) == (e.scopes, e.outcome, e.destination)
    assert obs.agent == agent_key(e) == "client:agent-crm"
    assert obs.entity == f"{e.tenant}/{e.user}/client:agent-crm/{e.audience}"
    assert obs.net == "198.51.100.0/24"
    assert obs.user_agent is None
    assert obs.family == "fam-1"
