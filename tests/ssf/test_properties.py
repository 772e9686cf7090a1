"""Property tests: whatever arrives, the verifier answers a VerifiedSet or an SsfError, never
anything else."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssf import SetVerifier, SsfError, VerifiedSet, events_of, parse_subject
from tests.ssf.helpers import AUDIENCE, ISSUER, NOW, Signer, b64, claims, ed_signer, verifier_for

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
member = st.text(min_size=1, max_size=12) | json_values
simple_subject = st.fixed_dictionaries(
    {
        "format": st.sampled_from(
            ["email", "iss_sub", "opaque", "account", "did", "uri", "phone_number", "jwt_id", "x"]
        )
    },
    optional={
        "email": member,
        "iss": member,
        "sub": member,
        "id": member,
        "uri": st.sampled_from(["acct:a@b", "https://u/"]) | member,
        "url": st.sampled_from(["did:example:1"]) | member,
        "phone_number": member,
        "jti": member,
    },
)
legacy_subject = st.fixed_dictionaries(
    {"subject_type": st.sampled_from(["iss-sub", "phone", "email", "jwt-id"]) | json_values},
    optional={"iss": member, "sub": member, "phone_number": member, "email": member},
)
complex_subject = st.fixed_dictionaries(
    {},
    optional={
        "format": st.just("complex") | json_values,
        "user": simple_subject | legacy_subject | json_values,
        "session": simple_subject | json_values,
        "tenant": simple_subject,
        "extra": simple_subject | json_values,
    },
)
aliases_subject = st.fixed_dictionaries(
    {"format": st.just("aliases")},
    optional={"identifiers": st.lists(simple_subject | complex_subject | json_values, max_size=3)},
)
subject_like = simple_subject | legacy_subject | complex_subject | aliases_subject | json_values
event_uris = st.sampled_from(
    [
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
        "https://schemas.openid.net/secevent/risc/event-type/account-disabled",
        "https://schemas.openid.net/secevent/risc/event-type/verification",
        "urn:x",
    ]
) | st.text(min_size=1, max_size=12)
event_bodies = st.dictionaries(
    st.sampled_from(["reason", "state", "claims", "x"]), json_values, max_size=3
) | st.fixed_dictionaries({"subject": subject_like})
good_events = st.dictionaries(event_uris, event_bodies, min_size=1, max_size=2)
events = good_events | st.dictionaries(event_uris, json_values, max_size=2) | json_values
payloads = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.just(ISSUER) | json_values,
        "aud": st.just(AUDIENCE) | st.just([AUDIENCE, "x"]) | json_values,
        "iat": st.integers(min_value=0, max_value=2**40) | json_values,
        "jti": st.text(max_size=8) | json_values,
        "txn": json_values,
        "sub_id": subject_like,
        "sub": json_values,
        "exp": json_values,
        "nbf": json_values,
        "events": events,
    },
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["EdDSA", "RS256", "HS256", "none", "ES256"]) | json_values,
        "typ": st.sampled_from(["secevent+jwt", "JWT", "application/secevent+jwt"]) | json_values,
        "kid": st.just("ed-1") | json_values,
        "crit": json_values,
        "jku": json_values,
    },
)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return ed_signer("ed-1")


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


def _outcome(runner: asyncio.Runner, verifier: SetVerifier, token: bytes | str) -> None:
    result: VerifiedSet | SsfError
    try:
        result = runner.run(verifier.verify(token, now=NOW))
    except SsfError as error:
        result = error
    if isinstance(result, SsfError):
        assert result.status == 400
        assert result.to_body()["err"] == result.err
    else:
        assert isinstance(result, VerifiedSet)


def test_arbitrary_bytes(signer: Signer, runner: asyncio.Runner) -> None:
    verifier = verifier_for(signer, strict=False)

    @SETTINGS
    @given(body=st.binary(max_size=2048))
    def check(body: bytes) -> None:
        _outcome(runner, verifier, body)

    check()


def test_arbitrary_three_segment_tokens(signer: Signer, runner: asyncio.Runner) -> None:
    verifier = verifier_for(signer)
    segment = st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.", max_size=60
    )

    @SETTINGS
    @given(a=segment, b=segment, c=segment)
    def check(a: str, b: str, c: str) -> None:
        _outcome(runner, verifier, f"{a}.{b}.{c}")

    check()


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("legacy", [True, False])
def test_arbitrary_signed_headers_and_claims(
    signer: Signer, runner: asyncio.Runner, strict: bool, legacy: bool
) -> None:
    """Correctly signed tokens carrying arbitrary JSON get deep into the checks."""
    verifier = verifier_for(signer, strict=strict, legacy=legacy)

    @SETTINGS
    @given(header=headers, payload=payloads)
    def check(header: dict[str, Any], payload: dict[str, Any]) -> None:
        signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(payload))}"
        signature = signer.private.sign(signing_input.encode())  # type: ignore[call-arg]
        _outcome(runner, verifier, f"{signing_input}.{b64(signature)}")

    check()


@pytest.mark.parametrize("legacy", [True, False])
def test_arbitrary_valid_envelope_arbitrary_events(
    signer: Signer, runner: asyncio.Runner, legacy: bool
) -> None:
    verifier = verifier_for(signer, strict=False, legacy=legacy)

    @SETTINGS
    @given(sub_id=subject_like, body=good_events)
    def check(sub_id: Any, body: Any) -> None:
        _outcome(runner, verifier, signer.sign(claims(sub_id=sub_id, events=body)))

    check()


@pytest.mark.parametrize("legacy", [True, False])
def test_parse_subject_and_events_of_raise_only_ssf_errors(legacy: bool) -> None:
    @SETTINGS
    @given(value=subject_like, payload=payloads)
    def check(value: Any, payload: dict[str, Any]) -> None:
        codes: list[str] = []
        try:
            parse_subject(value, legacy=legacy)
        except SsfError as error:
            codes.append(error.err)
        try:
            events_of(payload, legacy=legacy)
        except SsfError as error:
            codes.append(error.err)
        assert set(codes) <= {"invalid_request"}

    check()
