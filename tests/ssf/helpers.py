"""Test helpers: key pairs, their public JWKs, and a JWS signer independent of ``ssf.jws``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ssf import JwksCache, SetVerifier, TransmitterPolicy, TransmitterRegistry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ssf"
ISSUER = "https://idp.example.com/"
AUDIENCE = "https://receiver.example.com/"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

T = TypeVar("T")


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int(value: int, size: int | None = None) -> str:
    length = size if size is not None else max(1, (value.bit_length() + 7) // 8)
    return b64(value.to_bytes(length, "big"))


_EC_PARAMS = {"ES256": (ec.SECP256R1(), "P-256", 32), "ES384": (ec.SECP384R1(), "P-384", 48)}
_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


@dataclass
class Signer:
    """A private key with its ``kid`` and ``alg``; signs compact JWS."""

    kid: str | None
    alg: str
    private: PrivateKey

    @property
    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.private, self.kid, self.alg)

    def sign(
        self,
        payload: Mapping[str, Any] | bytes,
        *,
        typ: str | None = "secevent+jwt",
        header: Mapping[str, Any] | None = None,
        alg: str | None = None,
    ) -> str:
        hdr: dict[str, Any] = {"alg": alg or self.alg}
        if typ is not None:
            hdr["typ"] = typ
        if self.kid is not None:
            hdr["kid"] = self.kid
        hdr.update(header or {})
        return sign_compact(hdr, payload, self.private, alg or self.alg)


def rsa_signer(kid: str | None = "rsa-1", alg: str = "RS256", bits: int = 2048) -> Signer:
    return Signer(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_signer(kid: str | None = "ec-1", alg: str = "ES256") -> Signer:
    return Signer(kid, alg, ec.generate_private_key(_EC_PARAMS[alg][0]))


def ed_signer(kid: str | None = "ed-1") -> Signer:
    return Signer(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def public_jwk(private: PrivateKey, kid: str | None, alg: str | None = None) -> dict[str, Any]:
    jwk: dict[str, Any]
    if isinstance(private, rsa.RSAPrivateKey):
        numbers = private.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": _int(numbers.n), "e": _int(numbers.e)}
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        numbers_ec = private.public_key().public_numbers()
        size = (private.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[private.curve.key_size]
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": _int(numbers_ec.x, size),
            "y": _int(numbers_ec.y, size),
        }
    else:
        raw = private.public_key().public_bytes_raw()
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    jwk["use"] = "sig"
    return jwk


def jwks_of(*signers: Signer) -> dict[str, Any]:
    return {"keys": [s.jwk for s in signers]}


def sign_compact(
    header: Mapping[str, Any],
    payload: Mapping[str, Any] | bytes,
    key: PrivateKey | bytes | None,
    alg: str,
) -> str:
    """RFC 7515 compact serialization, signed with ``key`` as ``alg`` says (``none``: empty)."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    signing_input = f"{b64(orjson.dumps(dict(header)))}.{b64(body)}".encode("ascii")
    return f"{signing_input.decode()}.{b64(raw_signature(alg, key, signing_input))}"


def raw_signature(alg: str, key: PrivateKey | bytes | None, data: bytes) -> bytes:
    if alg == "none" or key is None:
        return b""
    if alg.startswith("HS"):
        assert isinstance(key, bytes)
        return hmac.new(key, data, getattr(hashlib, "sha" + alg[2:])).digest()
    if isinstance(key, rsa.RSAPrivateKey):
        h = _HASH[alg[2:]]()
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if alg.startswith("RS")
            else padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        )
        return key.sign(data, pad, h)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_HASH[alg[2:]]())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(data)


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid SSF 1.0 SET payload for ISSUER/AUDIENCE at NOW; ``None`` removes a claim."""
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "jti": "jti-0001",
        "iat": int(NOW.timestamp()) - 5,
        "aud": AUDIENCE,
        "txn": "8675309",
        "sub_id": {"format": "email", "email": "jane@acme.example"},
        "events": {
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                "event_timestamp": int(NOW.timestamp()) - 10
            }
        },
    }
    for name, value in overrides.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


def verifier_for(
    *signers: Signer, policy: TransmitterPolicy | None = None, **policy_args: Any
) -> SetVerifier:
    """A verifier with one transmitter (ISSUER/AUDIENCE) and an inline JWKS of ``signers``."""
    registry = TransmitterRegistry()
    registry.add(
        policy or TransmitterPolicy(issuer=ISSUER, audience=AUDIENCE, **policy_args),
        JwksCache(jwks=jwks_of(*signers)),
    )
    return SetVerifier(registry)


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data
