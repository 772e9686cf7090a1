"""Verified SET events -> AuditEvents: every spec example maps, subjects name our entities."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest import AuditEvent, TokenHasher
from ingest.security_events import STREAM_EVENTS, SubjectMapping, to_audit_event
from ssf import events_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ssf"
HASHER = TokenHasher(b"k" * 32)


def examples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in ("ssf_1_0.json", "caep_1_0.json", "risc_1_0.json"):
        for ex in json.loads((FIXTURES / name).read_text())["examples"]:
            out.append((f"{name}:{ex['name']}", ex))
    return out


def mapped(payload: dict[str, Any], mapping: SubjectMapping | None = None) -> list[AuditEvent]:
    return [
        AuditEvent.model_validate(
            to_audit_event(e, mapping or SubjectMapping(tenant="acme")), context={"hasher": HASHER}
        )
        for e in events_of(payload)
    ]


@pytest.mark.parametrize(("label", "example"), examples(), ids=[x[0] for x in examples()])
def test_every_spec_example_maps_to_a_valid_audit_event(
    label: str, example: dict[str, Any]
) -> None:
    events = mapped(example["payload"])
    assert events, label
    for event in events:
        assert event.action == f"ssf.{example['expect']['event_name']}"
        assert event.tenant == "acme"
        assert event.attributes["ssf"]["issuer"] == example["payload"]["iss"]
        assert event.attributes["ssf"]["jti"] == example["payload"]["jti"]
        assert event.id.startswith("set-")


def _payload(
    event: str, subject: dict[str, Any], claims: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "iss": "https://idp.example/",
        "jti": "j1",
        "iat": 1_800_000_000,
        "aud": "x",
        "sub_id": subject,
        "events": {f"https://schemas.openid.net/secevent/{event}": claims or {}},
    }


def test_complex_subject_maps_member_by_member() -> None:
    subject = {
        "format": "complex",
        "user": {"format": "iss_sub", "iss": "https://idp.example/", "sub": "u-123"},
        "session": {"format": "opaque", "id": "sess-9"},
        "device": {"format": "opaque", "id": "dev-7"},
        "application": {"format": "opaque", "id": "agent-crm"},
        "tenant": {"format": "opaque", "id": "globex"},
    }
    [e] = mapped(
        _payload("caep/event-type/session-revoked", subject, {"event_timestamp": 1_799_999_000})
    )
    assert (e.user, e.client_id, e.agent) == ("u-123", "agent-crm", "agent-crm")
    assert e.attributes["session_id"] == "sess-9"
    assert e.attributes["device_id"] == "dev-7"
    assert e.tenant == "acme"
    assert e.time == datetime.fromtimestamp(1_799_999_000, UTC)  # CAEP event_timestamp
    [e2] = mapped(
        _payload("caep/event-type/session-revoked", subject),
        SubjectMapping(tenant="acme", tenant_from_subject=True, application_as="client"),
    )
    assert e2.tenant == "globex"
    assert e2.agent is None
    assert e2.time == datetime.fromtimestamp(1_800_000_000, UTC)  # iat


def test_jwt_id_subject_names_a_token() -> None:
    [e] = mapped(
        _payload(
            "caep/event-type/token-claims-change",
            {"format": "jwt_id", "iss": "https://idp.example/", "jti": "tok-1"},
        )
    )
    assert e.token is not None and e.token.id == "tok-1"
    assert e.user is None


@pytest.mark.parametrize(
    ("subject", "user"),
    [
        ({"format": "email", "email": "Jane@Acme.Example"}, "jane@acme.example"),
        ({"format": "account", "uri": "acct:jane@acme.example"}, "jane@acme.example"),
        ({"format": "opaque", "id": "u-1"}, "u-1"),
        ({"format": "phone_number", "phone_number": "+12065550100"}, "+12065550100"),
        (
            {"format": "aliases", "identifiers": [{"format": "email", "email": "a@b.example"}]},
            "a@b.example",
        ),
    ],
)
def test_simple_subjects_name_the_user(subject: dict[str, Any], user: str) -> None:
    [e] = mapped(_payload("risc/event-type/account-disabled", subject))
    assert e.user == user


def test_stream_events_are_known() -> None:
    assert {"verification", "stream_updated"} == STREAM_EVENTS


def test_bad_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="application_as"):
        SubjectMapping(application_as="nobody")
