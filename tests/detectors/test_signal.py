"""The signal detector: which Shared Signals become which detections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detectors import Severity, SignalDetector, risk_of
from ingest import AuditEvent, TokenHasher

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
HASHER = TokenHasher(b"k" * 32)


def signal(name: str, claims: dict[str, Any] | None = None, **attrs: Any) -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "id": f"set-{name}",
            "time": T0.isoformat(),
            "tenant": "acme",
            "action": f"ssf.{name}",
            "user": "jane@acme.example",
            "attributes": {
                "ssf": {"issuer": "https://idp.example/", "jti": "j1", "event_type": "uri"},
                "claims": claims or {},
                **attrs,
            },
        },
        context={"hasher": HASHER},
    )


def detect(event: AuditEvent, state: dict[str, Any] | None = None) -> list[Any]:
    return SignalDetector().detect(event, state if state is not None else {}, T0)


@pytest.mark.parametrize(
    ("name", "severity"),
    [
        ("session_revoked", Severity.CRITICAL),
        ("account_disabled", Severity.CRITICAL),
        ("account_purged", Severity.CRITICAL),
        ("credential_compromise", Severity.CRITICAL),
        ("credential_change", Severity.HIGH),
        ("token_claims_change", Severity.HIGH),
        ("account_enabled", Severity.INFO),
        ("opt_out_effective", Severity.LOW),
        ("identifier_recycled", Severity.LOW),
    ],
)
def test_signal_severities(name: str, severity: Severity) -> None:
    [d] = detect(signal(name))
    assert d.severity is severity
    assert d.detector == "signal"
    assert d.evidence["signal"] == name
    assert d.user == "jane@acme.example"
    assert d.reason.startswith(f"https://idp.example/ sent {name.replace('_', '-')}")


def test_session_and_admin_reason_make_it_into_the_detection() -> None:
    [d] = detect(
        signal("session_revoked", {"reason_admin": {"en": "Landspeed Policy"}}, session_id="s-1")
    )
    assert d.session_id == "s-1"
    assert "(session s-1)" in d.reason
    assert d.reason.endswith("Landspeed Policy")


def test_device_compliance_fires_only_for_not_compliant() -> None:
    assert detect(signal("device_compliance_change", {"current_status": "compliant"})) == []
    [d] = detect(
        signal("device_compliance_change", {"current_status": "not-compliant"}, device_id="dev-1")
    )
    assert d.device_id == "dev-1"
    assert d.severity is Severity.CRITICAL


def test_risk_signals_raise_and_clear_the_users_risk() -> None:
    state: dict[str, Any] = {}
    detect(signal("risk_level_change", {"current_level": "HIGH"}), state)
    assert risk_of(state, tenant="acme", user="jane@acme.example", now=T0) == 0.5
    assert (
        risk_of(state, tenant="acme", user="jane@acme.example", now=T0 + timedelta(days=2)) == 0.0
    )
    detect(signal("risk_level_change", {"current_level": "low"}), state)
    assert risk_of(state, tenant="acme", user="jane@acme.example", now=T0) == 0.0


def test_assurance_raises_risk_only_when_it_went_down() -> None:
    state: dict[str, Any] = {}
    detect(signal("assurance_level_change", {"change_direction": "increase"}), state)
    assert risk_of(state, tenant="acme", user="jane@acme.example", now=T0) == 0.0
    detect(signal("assurance_level_change", {"change_direction": "decrease"}), state)
    assert risk_of(state, tenant="acme", user="jane@acme.example", now=T0) == 0.3


def test_session_context_is_kept_in_state_without_a_detection() -> None:
    state: dict[str, Any] = {}
    assert detect(signal("session_established"), state) == []
    assert state["sctx/acme/jane@acme.example"]["signal"] == "session_established"
    assert SignalDetector().sweep(state, T0 + timedelta(days=2)) == 1
    assert state == {}


def test_stream_events_and_other_actions_are_ignored() -> None:
    assert detect(signal("verification")) == []
    assert detect(signal("stream_updated")) == []
    used = AuditEvent.model_validate(
        {"time": 0, "tenant": "acme", "action": "token.used"}, context={"hasher": HASHER}
    )
    assert detect(used) == []
