"""The event-type catalogue and events_of."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from ssf import (
    EVENT_TYPES,
    EVENT_URIS,
    ComplexSubject,
    EmailSubject,
    SecurityEvent,
    SsfError,
    event_name,
    events_of,
)

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"

CATALOGUE = {
    CAEP + "session-revoked": "session_revoked",
    CAEP + "token-claims-change": "token_claims_change",
    CAEP + "credential-change": "credential_change",
    CAEP + "assurance-level-change": "assurance_level_change",
    CAEP + "device-compliance-change": "device_compliance_change",
    CAEP + "session-established": "session_established",
    CAEP + "session-presented": "session_presented",
    CAEP + "risk-level-change": "risk_level_change",
    RISC + "account-credential-change-required": "account_credential_change_required",
    RISC + "account-purged": "account_purged",
    RISC + "account-disabled": "account_disabled",
    RISC + "account-enabled": "account_enabled",
    RISC + "identifier-changed": "identifier_changed",
    RISC + "identifier-recycled": "identifier_recycled",
    RISC + "credential-compromise": "credential_compromise",
    RISC + "opt-in": "opt_in",
    RISC + "opt-out-initiated": "opt_out_initiated",
    RISC + "opt-out-cancelled": "opt_out_cancelled",
    RISC + "opt-out-effective": "opt_out_effective",
    RISC + "recovery-activated": "recovery_activated",
    RISC + "recovery-information-changed": "recovery_information_changed",
    RISC + "sessions-revoked": "sessions_revoked",
    SSF + "verification": "verification",
    SSF + "stream-updated": "stream_updated",
}


@pytest.mark.parametrize(("uri", "name"), CATALOGUE.items())
def test_catalogue(uri: str, name: str) -> None:
    assert event_name(uri) == name
    assert EVENT_TYPES[uri].name == name
    assert EVENT_URIS[name] == uri


def test_every_name_is_a_valid_audit_action_suffix() -> None:
    for entry in EVENT_TYPES.values():
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,63}", entry.name), entry
        assert entry.spec


def test_legacy_uris_map_to_the_same_names() -> None:
    assert event_name(RISC + "verification") == "verification"
    assert EVENT_URIS["verification"] == SSF + "verification"
    assert EVENT_TYPES[RISC + "sessions-revoked"].legacy
    assert event_name("urn:example:unknown") is None


def _payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": "https://idp.example.com/",
        "jti": "j-1",
        "iat": 1615305159,
        "aud": ["a", "b"],
        "txn": "t-1",
        "sub_id": {"format": "email", "email": "top@example.com"},
        "events": {CAEP + "session-revoked": {"event_timestamp": 1615304991}},
    }
    payload.update(overrides)
    return payload


def test_security_event_fields() -> None:
    [event] = events_of(_payload())
    assert isinstance(event, SecurityEvent)
    assert event.issuer == "https://idp.example.com/"
    assert event.jti == "j-1"
    assert event.iat == datetime(2021, 3, 9, 15, 52, 39, tzinfo=UTC)
    assert event.audience == ("a", "b")
    assert event.txn == "t-1"
    assert (event.event_type, event.event_name) == (CAEP + "session-revoked", "session_revoked")
    assert isinstance(event.subject, EmailSubject) and event.subject.email == "top@example.com"
    assert event.claims == {"event_timestamp": 1615304991}
    assert event.sub_id == {"format": "email", "email": "top@example.com"}
    with pytest.raises(Exception):  # noqa: B017, PT011 - pydantic's frozen error
        event.jti = "other"  # type: ignore[misc]


def test_event_subject_wins_over_sub_id() -> None:
    events = {
        CAEP + "session-revoked": {
            "subject": {
                "format": "complex",
                "session": {"format": "opaque", "id": "s-1"},
                "user": {"format": "email", "email": "inner@example.com"},
            }
        },
        CAEP + "credential-change": {"credential_type": "password", "change_type": "update"},
    }
    revoked, changed = events_of(_payload(events=events))
    assert isinstance(revoked.subject, ComplexSubject)
    assert "subject" not in revoked.claims
    assert revoked.sub_id == {"format": "email", "email": "top@example.com"}
    assert changed.subject.to_wire() == {"format": "email", "email": "top@example.com"}
    assert changed.claims == {"credential_type": "password", "change_type": "update"}


def test_no_subject_anywhere() -> None:
    payload = _payload()
    del payload["sub_id"]
    with pytest.raises(SsfError) as error:
        events_of(payload)
    assert error.value.err == "invalid_request"
    with pytest.raises(SsfError):
        events_of(payload | {"sub": "jane"})  # only legacy transmitters use sub
    [event] = events_of(payload | {"sub": "jane"}, legacy=True)
    assert event.subject.to_wire() == {
        "format": "iss_sub",
        "iss": "https://idp.example.com/",
        "sub": "jane",
    }


def test_verification_without_subject_only_for_legacy() -> None:
    payload = _payload(events={RISC + "verification": {"state": "abc"}})
    del payload["sub_id"]
    with pytest.raises(SsfError):
        events_of(payload)
    [event] = events_of(payload, legacy=True)
    assert event.event_name == "verification"
    assert event.subject.to_wire() == {"format": "opaque", "id": "https://idp.example.com/"}
    assert event.claims == {"state": "abc"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": None},
        {"jti": 5},
        {"iat": "yesterday"},
        {"aud": [1]},
        {"txn": 1},
        {"events": None},
        {"events": {}},
        {"sub_id": "x"},
        {"sub_id": {"format": "email"}},
        {"events": {CAEP + "session-revoked": {"subject": "jane"}}},
    ],
)
def test_malformed(overrides: dict[str, Any]) -> None:
    payload = _payload(**overrides)
    for name, value in overrides.items():
        if value is None:
            del payload[name]
    with pytest.raises(SsfError) as error:
        events_of(payload)
    assert error.value.err == "invalid_request"


def test_security_event_serialises_for_the_wire() -> None:
    [event] = events_of(_payload())
    dumped = event.model_dump(mode="json")
    assert dumped["iat"] == "2021-03-09T15:52:39Z"
    assert dumped["subject"] == {"format": "email", "email": "top@example.com"}
    assert SecurityEvent.model_validate(dumped) == event
