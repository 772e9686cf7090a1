"""SetVerifier: the happy paths and every way a SET is refused, each with its exact ``err``."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from ssf import (
    JwksCache,
    SetVerifier,
    SsfError,
    TransmitterPolicy,
    TransmitterRegistry,
    VerifiedSet,
)
from tests.ssf.helpers import (
    AUDIENCE,
    ISSUER,
    NOW,
    Signer,
    b64,
    claims,
    ec_signer,
    ed_signer,
    jwks_of,
    rsa_signer,
    run,
    sign_compact,
    verifier_for,
)

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CREDENTIAL_CHANGE = "https://schemas.openid.net/secevent/caep/event-type/credential-change"


def verify(verifier: SetVerifier, token: str | bytes, now: datetime = NOW) -> VerifiedSet:
    return run(verifier.verify(token, now=now))


def refused(verifier: SetVerifier, token: str | bytes, now: datetime = NOW) -> SsfError:
    with pytest.raises(SsfError) as info:
        verify(verifier, token, now)
    return info.value


# --- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [lambda: rsa_signer(alg="RS256"), lambda: rsa_signer(alg="PS256"), ec_signer, ed_signer]
)
def test_default_algorithms_verify(make: Any) -> None:
    signer: Signer = make()
    verified = verify(verifier_for(signer), signer.sign(claims()))
    assert (verified.issuer, verified.jti, verified.txn) == (ISSUER, "jti-0001", "8675309")
    assert verified.audience == (AUDIENCE,)
    assert (verified.alg, verified.kid) == (signer.alg, signer.kid)
    [event] = verified.events
    assert event.event_name == "session_revoked"
    assert event.subject.to_wire() == {"format": "email", "email": "jane@acme.example"}


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS384", "PS512", "ES384"])
def test_other_algorithms_when_allowed(alg: str) -> None:
    signer = ec_signer(alg=alg) if alg.startswith("ES") else rsa_signer(alg=alg)
    verifier = verifier_for(signer, algorithms=(alg,))
    assert verify(verifier, signer.sign(claims())).alg == alg


def test_bytes_str_and_surrounding_whitespace(rsa_key: Signer) -> None:
    verifier = verifier_for(rsa_key)
    token = rsa_key.sign(claims())
    assert verify(verifier, token).jti == "jti-0001"
    assert verify(verifier, token.encode()).jti == "jti-0001"
    assert verify(verifier, token + "\r\n").jti == "jti-0001"


@pytest.mark.parametrize("typ", ["secevent+jwt", "application/secevent+jwt", "SecEvent+JWT"])
def test_typ_spellings(rsa_key: Signer, typ: str) -> None:
    assert verify(verifier_for(rsa_key), rsa_key.sign(claims(), typ=typ)).jti == "jti-0001"


def test_audience_array_containing_ours(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(aud=["https://other.example/", AUDIENCE]))
    assert verify(verifier_for(rsa_key), token).audience == ("https://other.example/", AUDIENCE)


def test_iat_within_skew(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(iat=int(NOW.timestamp()) + 59))
    assert verify(verifier_for(rsa_key), token).jti == "jti-0001"


def test_no_kid_with_a_single_fitting_key() -> None:
    signer = rsa_signer(kid=None)
    assert verify(verifier_for(signer, ec_signer()), signer.sign(claims())).kid is None


def test_shared_secret_hs256() -> None:
    secret = b"s" * 32
    verifier = verifier_for(ec_signer(), algorithms=("ES256", "HS256"), hmac_secret=secret)
    token = sign_compact({"alg": "HS256", "typ": "secevent+jwt"}, claims(), secret, "HS256")
    assert verify(verifier, token).alg == "HS256"


@pytest.mark.parametrize(
    ("key", "alg"), [("rsa", "RS256"), ("rsa", "PS256"), ("ec", "ES256"), ("ed", "EdDSA")]
)
def test_tokens_signed_by_pyjwt_verify(key: str, alg: str) -> None:
    """Interop: our JWS check accepts what an independent implementation signs."""
    if key == "rsa":
        signer = rsa_signer(alg=alg)
    elif key == "ec":
        signer = ec_signer(alg=alg)
    else:
        signer = ed_signer()
    token = jwt.encode(
        claims(), signer.private, algorithm=alg, headers={"typ": "secevent+jwt", "kid": signer.kid}
    )
    assert verify(verifier_for(signer), token).alg == alg


def test_two_events_accepted_when_not_strict(rsa_key: Signer) -> None:
    events = {
        SESSION_REVOKED: {},
        CREDENTIAL_CHANGE: {"credential_type": "password", "change_type": "revoke"},
    }
    verified = verify(verifier_for(rsa_key, strict=False), rsa_key.sign(claims(events=events)))
    assert [e.event_name for e in verified.events] == ["session_revoked", "credential_change"]
    assert verified.events[1].claims == events[CREDENTIAL_CHANGE]


def test_exp_and_sub_accepted_when_not_strict(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(exp=int(NOW.timestamp()) + 300, sub="someone"))
    assert verify(verifier_for(rsa_key, strict=False), token).jti == "jti-0001"


def test_unknown_event_type_kept_without_name(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(events={"urn:example:secevent:events:type_2": {"x": 1}}))
    [event] = verify(verifier_for(rsa_key), token).events
    assert (event.event_type, event.event_name, event.claims) == (
        "urn:example:secevent:events:type_2",
        None,
        {"x": 1},
    )


# --- refused: signature, algorithm, key ------------------------------------------------------


def test_tampered_payload(rsa_key: Signer) -> None:
    header, _, signature = rsa_key.sign(claims()).split(".")
    forged = b64(orjson.dumps(claims(sub_id={"format": "email", "email": "mallory@evil.example"})))
    error = refused(verifier_for(rsa_key), f"{header}.{forged}.{signature}")
    assert error.err == "invalid_key"
    assert "signature does not verify" in error.description


def test_signature_by_an_unknown_key(rsa_key: Signer) -> None:
    impostor = rsa_signer(kid=rsa_key.kid)
    assert refused(verifier_for(rsa_key), impostor.sign(claims())).err == "invalid_key"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(rsa_key: Signer, alg: str) -> None:
    token = sign_compact(
        {"alg": alg, "typ": "secevent+jwt", "kid": "rsa-1"}, claims(), None, "none"
    )
    assert token.endswith(".")
    error = refused(verifier_for(rsa_key), token)
    assert error.err == "invalid_key"
    assert "never" in error.description or "not allowed" in error.description


def _public_key_materials(signer: Signer) -> list[bytes]:
    public = signer.private.public_key()
    return [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        orjson.dumps(signer.jwk),
        orjson.dumps(jwks_of(signer)),
    ]


def test_hs256_signed_with_the_transmitters_public_key(rsa_key: Signer) -> None:
    """Key confusion: the public RSA key (PEM, DER or JWK) used as an HMAC secret."""
    verifier = verifier_for(rsa_key)
    for secret in _public_key_materials(rsa_key):
        token = sign_compact(
            {"alg": "HS256", "typ": "secevent+jwt", "kid": "rsa-1"}, claims(), secret, "HS256"
        )
        error = refused(verifier, token)
        assert error.err == "invalid_key"
        assert "not allowed" in error.description


def test_hs256_with_public_key_is_refused_even_where_hmac_is_allowed(rsa_key: Signer) -> None:
    verifier = verifier_for(
        rsa_key, algorithms=("RS256", "HS256"), hmac_secret=b"the-real-shared-secret-32-bytes!"
    )
    for secret in _public_key_materials(rsa_key):
        token = sign_compact(
            {"alg": "HS256", "typ": "secevent+jwt", "kid": "rsa-1"}, claims(), secret, "HS256"
        )
        assert refused(verifier, token).err == "invalid_key"


def test_alg_not_in_allow_list(rsa_key: Signer) -> None:
    signer = rsa_signer(alg="RS512")
    error = refused(verifier_for(signer), signer.sign(claims()))
    assert error.err == "invalid_key"
    assert "RS512" in error.description and "not allowed" in error.description


def test_unknown_kid_in_inline_jwks(rsa_key: Signer) -> None:
    other = rsa_signer(kid="rsa-2")
    error = refused(verifier_for(rsa_key), other.sign(claims()))
    assert error.err == "invalid_key"
    assert "'rsa-2'" in error.description


def test_key_type_must_match_alg(rsa_key: Signer, ec_key: Signer) -> None:
    verifier = verifier_for(rsa_key, ec_key)
    # An ES256 token naming the RSA key's kid, and an RS256 token naming the EC key's kid.
    for token in (
        ec_key.sign(claims(), header={"kid": "rsa-1"}),
        rsa_key.sign(claims(), header={"kid": "ec-1"}),
    ):
        error = refused(verifier, token)
        assert error.err == "invalid_key"
        assert "cannot verify" in error.description


def test_jwk_alg_must_match_token_alg() -> None:
    signer = rsa_signer(alg="RS256")
    verifier = verifier_for(signer)  # the JWK says alg RS256
    error = refused(verifier, signer.sign(claims(), alg="PS256"))
    assert error.err == "invalid_key"


def test_no_kid_with_several_fitting_keys() -> None:
    a, b = rsa_signer(kid=None), rsa_signer(kid="rsa-2")
    error = refused(verifier_for(a, b), a.sign(claims()))
    assert error.err == "invalid_key"
    assert "no kid" in error.description


def test_es256_signature_of_the_wrong_length(ec_key: Signer) -> None:
    header_payload = ec_key.sign(claims()).rsplit(".", 1)[0]
    token = f"{header_payload}.{b64(b'x' * 70)}"
    assert refused(verifier_for(ec_key), token).err == "invalid_key"


def test_truncated_signature(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims())
    assert refused(verifier_for(rsa_key), token[:-4]).err == "invalid_key"


# --- refused: issuer, audience ---------------------------------------------------------------


def test_wrong_issuer(rsa_key: Signer) -> None:
    error = refused(verifier_for(rsa_key), rsa_key.sign(claims(iss="https://evil.example/")))
    assert error.err == "invalid_issuer"
    assert "https://evil.example/" in error.description


@pytest.mark.parametrize("iss", [None, "", 42, ["https://idp.example.com/"]])
def test_missing_or_malformed_issuer(rsa_key: Signer, iss: Any) -> None:
    payload = claims()
    if iss is None:
        del payload["iss"]
    else:
        payload["iss"] = iss
    assert refused(verifier_for(rsa_key), rsa_key.sign(payload)).err == "invalid_request"


@pytest.mark.parametrize("aud", ["https://other.example/", ["a", "b"], []])
def test_wrong_audience(rsa_key: Signer, aud: Any) -> None:
    assert refused(verifier_for(rsa_key), rsa_key.sign(claims(aud=aud))).err == "invalid_audience"


def test_missing_audience(rsa_key: Signer) -> None:
    payload = claims()
    del payload["aud"]
    assert refused(verifier_for(rsa_key), rsa_key.sign(payload)).err == "invalid_audience"


def test_malformed_audience(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(aud=[AUDIENCE, 7]))
    assert refused(verifier_for(rsa_key), token).err == "invalid_request"


# --- refused: claims ---------------------------------------------------------------------------


def test_iat_in_the_future(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(iat=int(NOW.timestamp()) + 3600))
    error = refused(verifier_for(rsa_key), token)
    assert error.err == "invalid_request"
    assert "future" in error.description


@pytest.mark.parametrize("iat", [None, "1615305159", True, 1e300, -1e300, [1]])
def test_missing_or_malformed_iat(rsa_key: Signer, iat: Any) -> None:
    payload = claims()
    if iat is None:
        del payload["iat"]
    else:
        payload["iat"] = iat
    assert refused(verifier_for(rsa_key), rsa_key.sign(payload)).err == "invalid_request"


@pytest.mark.parametrize("jti", [None, "", 12])
def test_missing_or_malformed_jti(rsa_key: Signer, jti: Any) -> None:
    payload = claims()
    if jti is None:
        del payload["jti"]
    else:
        payload["jti"] = jti
    assert refused(verifier_for(rsa_key), rsa_key.sign(payload)).err == "invalid_request"


def test_two_events_under_strict(rsa_key: Signer) -> None:
    events: dict[str, Any] = {SESSION_REVOKED: {}, CREDENTIAL_CHANGE: {}}
    error = refused(verifier_for(rsa_key), rsa_key.sign(claims(events=events)))
    assert error.err == "invalid_request"
    assert "exactly one event" in error.description


@pytest.mark.parametrize("extra", [{"sub": "jane"}, {"exp": 4102444800}])
def test_sub_or_exp_under_strict(rsa_key: Signer, extra: dict[str, Any]) -> None:
    error = refused(verifier_for(rsa_key), rsa_key.sign(claims(**extra)))
    assert error.err == "invalid_request"
    assert next(iter(extra)) in error.description


def test_expired_when_not_strict(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(exp=int(NOW.timestamp()) - 600))
    assert refused(verifier_for(rsa_key, strict=False), token).err == "invalid_request"


def test_nbf_in_the_future(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(nbf=int(NOW.timestamp()) + 600))
    assert refused(verifier_for(rsa_key), token).err == "invalid_request"


@pytest.mark.parametrize(
    "events",
    [None, [], {}, "x", {SESSION_REVOKED: []}, {SESSION_REVOKED: "revoked"}, {"": {}}],
)
def test_malformed_events(rsa_key: Signer, events: Any) -> None:
    payload = claims()
    if events is None:
        del payload["events"]
    else:
        payload["events"] = events
    assert refused(verifier_for(rsa_key), rsa_key.sign(payload)).err == "invalid_request"


def test_event_without_any_subject(rsa_key: Signer) -> None:
    payload = claims()
    del payload["sub_id"]
    error = refused(verifier_for(rsa_key), rsa_key.sign(payload))
    assert error.err == "invalid_request"
    assert "no subject" in error.description


@pytest.mark.parametrize(
    "sub_id",
    [
        "jane@acme.example",
        {"format": "email"},
        {"email": "jane@acme.example"},
        {"format": "iss_sub", "iss": "https://idp.example.com/"},
        {"format": "complex"},
    ],
)
def test_malformed_sub_id(rsa_key: Signer, sub_id: Any) -> None:
    error = refused(verifier_for(rsa_key), rsa_key.sign(claims(sub_id=sub_id)))
    assert error.err == "invalid_request"
    assert "sub_id" in error.description


def test_txn_must_be_a_string(rsa_key: Signer) -> None:
    assert refused(verifier_for(rsa_key), rsa_key.sign(claims(txn=5))).err == "invalid_request"


# --- refused: envelope -------------------------------------------------------------------------


def test_body_over_the_limit(rsa_key: Signer) -> None:
    big = claims(events={SESSION_REVOKED: {"padding": "x" * 70_000}})
    error = refused(verifier_for(rsa_key), rsa_key.sign(big))
    assert error.err == "invalid_request"
    assert "limit" in error.description


def test_body_over_the_transmitters_own_limit(rsa_key: Signer) -> None:
    registry = TransmitterRegistry()
    registry.add(
        TransmitterPolicy(issuer=ISSUER, audience=AUDIENCE, max_bytes=1024),
        JwksCache(jwks=jwks_of(rsa_key)),
    )
    registry.add(
        TransmitterPolicy(issuer="https://big.example/", audience=AUDIENCE, max_bytes=256 * 1024),
        JwksCache(jwks=jwks_of(rsa_key)),
    )
    big = claims(events={SESSION_REVOKED: {"padding": "x" * 2000}})
    assert registry.max_bytes == 256 * 1024
    error = refused(SetVerifier(registry), rsa_key.sign(big))
    assert error.err == "invalid_request"
    assert "1024-byte" in error.description


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"hello world",
        b'{"iss": "https://idp.example.com/"}',
        "eyJhbGciOiJSUzI1NiJ9.é.x",
        b"\x00\xff\xfe",
        b"a.b",
        b"a.b.c.d",
        b"...",
        b"..",
    ],
)
def test_not_a_jws(rsa_key: Signer, body: bytes | str) -> None:
    assert refused(verifier_for(rsa_key), body).err == "invalid_request"


def test_truncated_jws(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims())
    header, payload, _ = token.split(".")
    verifier = verifier_for(rsa_key)
    assert refused(verifier, f"{header}.{payload}").err == "invalid_request"
    assert refused(verifier, f"{header}.{payload[:-5]}").err == "invalid_request"
    assert refused(verifier, token[: len(header) + 10]).err == "invalid_request"


def test_jwe_shaped_token(rsa_key: Signer) -> None:
    jwe = ".".join(
        b64(x) for x in (b'{"alg":"RSA-OAEP","enc":"A256GCM"}', b"k", b"iv", b"ct", b"t")
    )
    error = refused(verifier_for(rsa_key), jwe)
    assert error.err == "invalid_request"
    assert "JWE" in error.description


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "logout+jwt", "application/jwt", 7, ""])
def test_wrong_typ(rsa_key: Signer, typ: Any) -> None:
    error = refused(verifier_for(rsa_key), rsa_key.sign(claims(), typ=None, header={"typ": typ}))
    assert error.err == "invalid_request"
    assert "typ" in error.description


def test_missing_typ(rsa_key: Signer) -> None:
    error = refused(verifier_for(rsa_key), rsa_key.sign(claims(), typ=None))
    assert error.err == "invalid_request"
    assert "typ" in error.description


def test_crit_header(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(), header={"crit": ["b64"], "b64": False})
    assert refused(verifier_for(rsa_key), token).err == "invalid_request"


@pytest.mark.parametrize("kid", [7, ["rsa-1"], {"kid": "rsa-1"}])
def test_malformed_kid(rsa_key: Signer, kid: Any) -> None:
    assert refused(verifier_for(rsa_key), rsa_key.sign(claims(), header={"kid": kid})).err == (
        "invalid_request"
    )


@pytest.mark.parametrize("alg", [None, 7, ""])
def test_missing_or_malformed_alg(rsa_key: Signer, alg: Any) -> None:
    header = {"typ": "secevent+jwt", "kid": "rsa-1"} | ({} if alg is None else {"alg": alg})
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims()))}"
    assert refused(verifier_for(rsa_key), signing_input + ".AAAA").err == "invalid_request"


def _segments(rsa_key: Signer) -> tuple[str, str, str]:
    header, payload, signature = rsa_key.sign(claims()).split(".")
    return header, payload, signature


@pytest.mark.parametrize(
    "bad",
    [
        "eyJhbGciOiJSUzI1NiJ9=",  # padding
        "eyJhbGciOiJSUzI1NiJ9+",  # not base64url
        "eyJhbGci/OiJSUzI1NiJ9",
        "e",  # length 1 mod 4
        b64(b'{"alg": "RS256", "typ": "secevent+jwt"'),  # truncated JSON
        b64(b'["RS256"]'),  # not an object
        b64(b"\xff\xfe"),  # not UTF-8
        b64(b"null"),
    ],
)
def test_malformed_header(rsa_key: Signer, bad: str) -> None:
    _, payload, signature = _segments(rsa_key)
    error = refused(verifier_for(rsa_key), f"{bad}.{payload}.{signature}")
    assert error.err == "invalid_request"
    assert "header" in error.description


@pytest.mark.parametrize(
    "bad",
    [
        "eyJpc3MiOiJ4In0=",
        "eyJpc3Mi*iJ4In0",
        b64(b'{"iss": "https://idp.example.com/"'),
        b64(b"[1, 2]"),
        b64(b'"a string"'),
        b64(b"\xc3\x28"),
    ],
)
def test_malformed_payload(rsa_key: Signer, bad: str) -> None:
    header, _, signature = _segments(rsa_key)
    error = refused(verifier_for(rsa_key), f"{header}.{bad}.{signature}")
    assert error.err == "invalid_request"
    assert "payload" in error.description


def test_malformed_signature_segment(rsa_key: Signer) -> None:
    header, payload, signature = _segments(rsa_key)
    token = f"{header}.{payload}.{signature[:-2]}+/"
    assert refused(verifier_for(rsa_key), token).err == "invalid_request"


def test_descriptions_carry_no_token_or_key_material(rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(aud="https://wrong.example/"))
    error = refused(verifier_for(rsa_key), token)
    _, _, signature = token.split(".")
    assert signature[:16] not in error.description
    assert rsa_key.jwk["n"][:16] not in error.description
    assert error.to_body() == {"err": "invalid_audience", "description": error.description}


def test_now_must_be_aware(rsa_key: Signer) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(verifier_for(rsa_key), rsa_key.sign(claims()), now=NOW.replace(tzinfo=None))


def test_verification_is_a_function_of_now(rsa_key: Signer) -> None:
    """The same token is accepted or refused only by the ``now`` passed in."""
    token = rsa_key.sign(claims(iat=int(NOW.timestamp())))
    verifier = verifier_for(rsa_key)
    assert verify(verifier, token, NOW).jti == "jti-0001"
    assert refused(verifier, token, NOW - timedelta(minutes=5)).err == "invalid_request"


# --- policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithms": ("none",)},
        {"algorithms": ("RS256", "None")},
        {"algorithms": ("HS256",)},
        {"algorithms": ("HS256",), "hmac_secret": b"short"},
        {"algorithms": ("HS512",), "hmac_secret": b"x" * 32},
        {"algorithms": ()},
        {"algorithms": "RS256"},
        {"algorithms": ("RS1",)},
        {"issuer": ""},
        {"audience": ""},
        {"max_bytes": 0},
        {"iat_skew_seconds": -1},
    ],
)
def test_policy_refuses_unsafe_configuration(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE} | kwargs
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per rule
        TransmitterPolicy(**args)


def test_policy_defaults() -> None:
    policy = TransmitterPolicy(issuer=ISSUER, audience=AUDIENCE)
    assert policy.algorithms == ("RS256", "PS256", "ES256", "EdDSA")
    assert (policy.strict, policy.max_bytes, policy.iat_skew_seconds, policy.legacy) == (
        True,
        64 * 1024,
        60.0,
        False,
    )
    assert policy.hmac_secret is None
    secret_policy = TransmitterPolicy(
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["HS256"],  # type: ignore[arg-type]
        hmac_secret=b"k" * 32,
    )
    assert secret_policy.algorithms == ("HS256",)
    assert "k" * 32 not in repr(secret_policy)


def test_registry(rsa_key: Signer) -> None:
    registry = TransmitterRegistry()
    keys = JwksCache(jwks=jwks_of(rsa_key))
    transmitter = registry.add(TransmitterPolicy(issuer=ISSUER, audience=AUDIENCE), keys)
    assert registry.get(ISSUER) is transmitter and ISSUER in registry and len(registry) == 1
    assert list(registry) == [transmitter]
    registry.remove(ISSUER)
    assert registry.get(ISSUER) is None
    assert refused(SetVerifier(registry), rsa_key.sign(claims())).err == "invalid_issuer"


def test_standard_base64_signature_is_refused(rsa_key: Signer) -> None:
    header, payload, signature = _segments(rsa_key)
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    standard = base64.b64encode(raw).decode()
    assert standard.endswith("==")  # 256 bytes: always padded
    token = f"{header}.{payload}.{standard}"
    assert refused(verifier_for(rsa_key), token).err == "invalid_request"
