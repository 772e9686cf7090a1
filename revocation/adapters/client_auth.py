"""OAuth 2.0 client authentication for calls to an authorization server's endpoints.

* ``client_secret_basic`` — RFC 6749 §2.3.1: HTTP Basic with the client id as user name
  and the secret as password, *each first encoded with application/x-www-form-urlencoded*
  ("The client identifier is encoded using the application/x-www-form-urlencoded encoding
  algorithm per Appendix B, and the encoded value is used as the username; the client
  password is encoded using the same algorithm and used as the password").
* ``client_secret_post`` — RFC 6749 §2.3.1: ``client_id`` and ``client_secret`` in the
  request body ("NOT RECOMMENDED", but some servers only offer it).
* ``private_key_jwt`` — RFC 7523 §2.2 and §3, RFC 7521 §4.2: ``client_assertion_type`` =
  ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and ``client_assertion`` = a
  JWT signed with the client's private key whose ``iss`` and ``sub`` are the client id, whose
  ``aud`` identifies the authorization server ("The token endpoint URL of the
  authorization server MAY be used as a value for an 'aud' element"), with ``exp``, ``iat``
  and a unique ``jti``. Signed here with ``cryptography`` (RS256, PS256, ES256, EdDSA;
  RFC 7518 §3.3-3.5, RFC 8037 §3.1); each assertion is fresh, so a retried call never
  replays one.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import quote_plus

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


class ClientAuth(Protocol):
    """Adds the client's credentials to a form POST (body fields and headers)."""

    def apply(self, form: dict[str, str], headers: dict[str, str], *, now: datetime) -> None: ...


class ClientSecretBasic:
    """RFC 6749 §2.3.1 HTTP Basic, with the form-urlencoding the RFC requires."""

    def __init__(self, client_id: str, secret: str) -> None:
        user, password = quote_plus(client_id), quote_plus(secret)
        self._header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def apply(self, form: dict[str, str], headers: dict[str, str], *, now: datetime) -> None:
        headers["Authorization"] = self._header


class ClientSecretPost:
    """RFC 6749 §2.3.1 credentials in the request body."""

    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id, self._secret = client_id, secret

    def apply(self, form: dict[str, str], headers: dict[str, str], *, now: datetime) -> None:
        form["client_id"] = self.client_id
        form["client_secret"] = self._secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def load_private_key(pem: bytes) -> PrivateKey:
    """An RSA, EC P-256 or Ed25519 private key from PEM (PKCS#8 or traditional)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def sign_jws(payload: dict[str, object], key: PrivateKey, *, alg: str, kid: str | None) -> str:
    """A compact JWS (RFC 7515 §7.1) of ``payload`` signed with ``key`` under ``alg``."""
    header: dict[str, object] = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = (_b64(orjson.dumps(header)) + "." + _b64(orjson.dumps(payload))).encode("ascii")
    if alg == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256" and isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)  # RFC 7518 §3.5
        sig = key.sign(signing_input, pss, hashes.SHA256())
    elif alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name != "secp256r1":
            raise ValueError(f"ES256 needs a P-256 key, not {key.curve.name}")
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 7518 §3.4: R || S
    elif alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        sig = key.sign(signing_input)
    else:
        raise ValueError(f"algorithm {alg} does not fit a {type(key).__name__}")
    return signing_input.decode("ascii") + "." + _b64(sig)


class PrivateKeyJwt:
    """RFC 7523 §2.2 client authentication with a signed JWT assertion."""

    def __init__(
        self,
        client_id: str,
        key: PrivateKey,
        *,
        audience: str,
        alg: str = "RS256",
        kid: str | None = None,
        lifetime: timedelta = timedelta(seconds=60),
        jti: Callable[[], str] = lambda: secrets.token_urlsafe(16),
    ) -> None:
        if alg not in ALGORITHMS:
            raise ValueError(f"signing algorithm {alg!r} is not one of {', '.join(ALGORITHMS)}")
        self.client_id, self.key, self.audience = client_id, key, audience
        self.alg, self.kid, self.lifetime, self._jti = alg, kid, lifetime, jti
        sign_jws({}, key, alg=alg, kid=kid)  # refuse a key that does not fit alg at once

    def assertion(self, *, now: datetime) -> str:
        iat = int(now.timestamp())
        claims: dict[str, object] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.audience,
            "jti": self._jti(),
            "iat": iat,
            "exp": iat + int(self.lifetime.total_seconds()),
        }
        return sign_jws(claims, self.key, alg=self.alg, kid=self.kid)

    def apply(self, form: dict[str, str], headers: dict[str, str], *, now: datetime) -> None:
        form["client_id"] = self.client_id
        form["client_assertion_type"] = JWT_BEARER
        form["client_assertion"] = self.assertion(now=now)
