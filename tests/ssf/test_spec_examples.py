"""Every example SET of SSF 1.0, CAEP 1.0 and RISC 1.0, signed here and verified.

The payloads in ``tests/fixtures/ssf/{ssf,caep,risc}_1_0.json`` are the spec figures; each
is signed with generated RS256, ES256 and EdDSA keys, verified in strict mode with the
example's own ``iss`` and ``aud``, and mapped to its short event name and subject.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ssf import (
    ComplexSubject,
    JwksCache,
    SetVerifier,
    TransmitterPolicy,
    TransmitterRegistry,
    VerifiedSet,
)
from tests.ssf.helpers import Signer, jwks_of, load_fixture, run

SPECS = ("ssf_1_0.json", "caep_1_0.json", "risc_1_0.json")
EXAMPLES = [
    pytest.param(example, id=f"{spec.removesuffix('.json')}:{example['name']}")
    for spec in SPECS
    for example in load_fixture(spec)["examples"]
]


def _verify(example: dict[str, Any], signer: Signer) -> VerifiedSet:
    payload = example["payload"]
    aud = payload["aud"]
    registry = TransmitterRegistry()
    registry.add(
        TransmitterPolicy(issuer=payload["iss"], audience=aud if isinstance(aud, str) else aud[-1]),
        JwksCache(jwks=jwks_of(signer)),
    )
    now = datetime.fromtimestamp(payload["iat"], tz=UTC) + timedelta(seconds=1)
    return run(SetVerifier(registry).verify(signer.sign(payload), now=now))


def test_fixture_counts() -> None:
    """9 SSF figures (4.1.8, six in 5, 8.1.4.2, 8.1.5), 13 CAEP figures, 5 RISC figures."""
    assert [len(load_fixture(s)["examples"]) for s in SPECS] == [9, 13, 5]


@pytest.mark.parametrize("example", EXAMPLES)
@pytest.mark.parametrize("key", ["rsa_key", "ec_key", "ed_key"])
def test_spec_example_verifies(
    example: dict[str, Any], key: str, request: pytest.FixtureRequest
) -> None:
    signer: Signer = request.getfixturevalue(key)
    verified = _verify(example, signer)
    payload, expect = example["payload"], example["expect"]

    assert verified.issuer == payload["iss"]
    assert verified.jti == payload["jti"]
    assert verified.iat == datetime.fromtimestamp(payload["iat"], tz=UTC)
    assert verified.txn == payload.get("txn")
    assert verified.alg == signer.alg and verified.kid == signer.kid
    aud = payload["aud"]
    assert verified.audience == ((aud,) if isinstance(aud, str) else tuple(aud))
    if "audience" in expect:
        assert list(verified.audience) == expect["audience"]

    [event] = verified.events
    [(uri, body)] = payload["events"].items()
    assert event.event_type == uri
    assert event.event_name == expect["event_name"]
    assert event.subject.format == expect["subject_format"]
    assert event.subject.to_wire() == payload["sub_id"]
    assert event.sub_id == payload["sub_id"]
    if "subject" in expect:
        assert event.subject.to_wire() == expect["subject"]
    if "members" in expect:
        assert isinstance(event.subject, ComplexSubject)
        assert sorted(event.subject.members()) == sorted(expect["members"])
    assert dict(event.claims) == body
    for name, value in expect.get("claims", {}).items():
        assert event.claims[name] == value
    assert (event.issuer, event.jti, event.iat, event.txn) == (
        verified.issuer,
        verified.jti,
        verified.iat,
        verified.txn,
    )


def test_every_catalogued_spec_event_with_an_example_is_covered() -> None:
    names = {
        example["expect"]["event_name"]
        for spec in SPECS
        for example in load_fixture(spec)["examples"]
    }
    assert {
        "session_revoked",
        "token_claims_change",
        "credential_change",
        "assurance_level_change",
        "device_compliance_change",
        "session_established",
        "session_presented",
        "risk_level_change",
        "account_credential_change_required",
        "account_disabled",
        "account_enabled",
        "identifier_changed",
        "identifier_recycled",
        "credential_compromise",
        "verification",
        "stream_updated",
    } <= names


def test_risc_account_disabled_fixture_notes_the_spec_fix() -> None:
    risc = load_fixture("risc_1_0.json")
    assert "trailing comma" in risc["note"]
    [disabled] = [e for e in risc["examples"] if e["name"] == "account-disabled-example"]
    assert "trailing comma" in disabled["fixed"]
