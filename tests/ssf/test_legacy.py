"""Legacy shapes: Google RISC (subject in the event, subject_type, iss-sub, no typ) and
SETs carrying both a top-level sub_id and an in-event subject."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ssf import (
    ComplexSubject,
    JwksCache,
    SetVerifier,
    SsfError,
    TransmitterPolicy,
    TransmitterRegistry,
    VerifiedSet,
)
from tests.ssf.helpers import Signer, jwks_of, load_fixture, run

LEGACY = load_fixture("legacy.json")["examples"]


def _verify(
    payload: dict[str, Any], signer: Signer, *, legacy: bool, typ: str | None
) -> VerifiedSet:
    registry = TransmitterRegistry()
    registry.add(
        TransmitterPolicy(issuer=payload["iss"], audience=payload["aud"], legacy=legacy),
        JwksCache(jwks=jwks_of(signer)),
    )
    now = datetime.fromtimestamp(payload["iat"], tz=UTC) + timedelta(seconds=30)
    return run(SetVerifier(registry).verify(signer.sign(payload, typ=typ), now=now))


@pytest.mark.parametrize("example", LEGACY, ids=[e["name"] for e in LEGACY])
def test_legacy_shape_verifies_for_a_legacy_transmitter(
    example: dict[str, Any], rsa_key: Signer
) -> None:
    verified = _verify(example["payload"], rsa_key, legacy=True, typ=example["typ"])
    [event] = verified.events
    expect = example["expect"]
    assert event.event_name == expect["event_name"]
    assert event.subject.to_wire() == expect["subject"]
    assert "subject" not in event.claims
    for name, value in expect.get("claims", {}).items():
        assert event.claims[name] == value
    assert event.sub_id == expect.get("sub_id")


@pytest.mark.parametrize("example", LEGACY, ids=[e["name"] for e in LEGACY])
def test_legacy_shape_is_refused_without_legacy(example: dict[str, Any], rsa_key: Signer) -> None:
    with pytest.raises(SsfError) as refused:
        _verify(example["payload"], rsa_key, legacy=False, typ=example["typ"])
    assert refused.value.err == "invalid_request"


def test_google_subject_type_is_normalised_to_format(rsa_key: Signer) -> None:
    [example] = [e for e in LEGACY if e["name"] == "google-risc-account-disabled"]
    verified = _verify(example["payload"], rsa_key, legacy=True, typ=None)
    subject = verified.events[0].subject
    assert subject.format == "iss_sub"
    assert subject.model_extra == {}


def test_legacy_transmitter_still_refuses_a_wrong_typ(rsa_key: Signer) -> None:
    [example] = [e for e in LEGACY if e["name"] == "google-risc-account-disabled"]
    with pytest.raises(SsfError) as refused:
        _verify(example["payload"], rsa_key, legacy=True, typ="JWT")
    assert refused.value.err == "invalid_request"


def test_sub_id_and_in_event_subject_in_ssf_1_0_shape(rsa_key: Signer) -> None:
    """The in-event subject is the event's subject; sub_id is kept as it came."""
    [example] = [e for e in LEGACY if e["name"] == "workspace-sub-id-and-event-subject"]
    payload = copy.deepcopy(example["payload"])
    [body] = payload["events"].values()
    body["subject"]["format"] = "complex"
    verified = _verify(payload, rsa_key, legacy=False, typ="secevent+jwt")
    [event] = verified.events
    assert isinstance(event.subject, ComplexSubject)
    assert event.subject.session is not None
    assert event.subject.session.to_wire() == {"format": "opaque", "id": "sess-9f2c"}
    assert event.sub_id == {"format": "email", "email": "jane@acme.example"}
    assert event.claims == {"event_timestamp": 1508184840}


def test_legacy_top_level_sub_becomes_iss_sub(rsa_key: Signer) -> None:
    payload: dict[str, Any] = {
        "iss": "https://accounts.google.com/",
        "aud": "client-1",
        "iat": 1508184845,
        "jti": "j-1",
        "sub": "7375626A656374",
        "events": {"https://schemas.openid.net/secevent/risc/event-type/account-purged": {}},
    }
    registry = TransmitterRegistry()
    registry.add(
        TransmitterPolicy(issuer=payload["iss"], audience="client-1", legacy=True, strict=False),
        JwksCache(jwks=jwks_of(rsa_key)),
    )
    now = datetime(2017, 10, 16, 20, 14, 10, tzinfo=UTC)
    verified = run(SetVerifier(registry).verify(rsa_key.sign(payload), now=now))
    assert verified.events[0].event_name == "account_purged"
    assert verified.events[0].subject.to_wire() == {
        "format": "iss_sub",
        "iss": "https://accounts.google.com/",
        "sub": "7375626A656374",
    }
