"""JWS Compact Serialization and signature checks with bare ``cryptography`` (RFC 7515, 7518, 8037).

Why not PyJWT or jwcrypto: measured here (``bench/ssf_verify.py``, p50 per token), PyJWT
2.15 spends ~35-50 µs on ``get_unverified_header`` alone and ~68 µs (RS256) / ~92 µs
(ES256) per ``decode``; jwcrypto ~67 / ~97 µs; a bare ``cryptography`` verify with a
pre-parsed key is ~16 / ~46 µs. The JWS part is small: RFC 7515 §5.2 steps 1-8 for the
compact serialization, done once here, so the whole of ``SetVerifier.verify`` (parse,
checks, signature, events, subjects) costs ~40 µs for RS256 and ~71 µs for ES256.

RFC 7515 §7.1: the compact serialization is
``BASE64URL(UTF8(JWS Protected Header)) || '.' || BASE64URL(JWS Payload) || '.' ||
BASE64URL(JWS Signature)``; the signing input (§5.2 step 8) is the first two segments
joined by ``'.'`` exactly as received. RFC 7515 §2: base64url is "Base64 encoding using the
URL- and filename-safe character set [...] with all trailing '=' characters omitted"; any
other character, padding, or a length of 1 mod 4 is refused (``invalid_request``).

Algorithms (RFC 7518 §3.1, RFC 8037 §3.1):

- ``RS256/384/512``: RSA key, RSASSA-PKCS1-v1_5 (RFC 7518 §3.3);
- ``PS256/384/512``: RSA key, RSASSA-PSS with MGF1 of the same hash and a salt as long as
  the hash (RFC 7518 §3.5: "The size of the salt value is the same size as the hash function
  output");
- ``ES256/384/512``: EC key on P-256 / P-384 / P-521; the signature is R || S, each exactly
  the coordinate size (RFC 7518 §3.4), re-encoded as DER for OpenSSL;
- ``EdDSA``: Ed25519 / Ed448 key (RFC 8037 §3.1);
- ``HS256/384/512``: the shared secret bytes, HMAC compared in constant time (RFC 7518 §3.2).

Key confusion is refused by construction: :func:`key_fits` says whether a key object may be
used with an ``alg`` — an RSA key never verifies an ``HS*`` or ``ES*`` token, a P-384 key
never an ES256 token, and ``HS*`` only ever takes ``bytes`` (the configured shared secret,
never JWKS material).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ssf.errors import InvalidKey, InvalidRequest, excerpt

#: A public key ready to verify with.
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey

_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_PAD: Final = (b"", b"", b"==", b"=")

_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_HMAC_DIGESTS: Final = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_EC_CURVES: Final[dict[str, tuple[type[ec.EllipticCurve], int]]] = {
    "ES256": (ec.SECP256R1, 32),
    "ES384": (ec.SECP384R1, 48),
    "ES512": (ec.SECP521R1, 66),
}

#: Every algorithm this module can check. ``none`` is not one of them, ever.
SUPPORTED_ALGORITHMS: Final[frozenset[str]] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
    | set(_HMAC_DIGESTS)
)
HMAC_ALGORITHMS: Final[frozenset[str]] = frozenset(_HMAC_DIGESTS)


def hmac_min_bytes(alg: str) -> int:
    """RFC 7518 §3.2: "A key of the same size as the hash output [...] or larger MUST be used"."""
    return _HMAC_DIGESTS[alg]().digest_size


def b64url_decode(segment: bytes, what: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2); ``invalid_request`` otherwise."""
    # strict_mode refuses every byte outside the standard alphabet; "+", "/" and "=" are in
    # that alphabet but not in base64url, so they are refused here first.
    if b"+" in segment or b"/" in segment or b"=" in segment or len(segment) % 4 == 1:
        raise InvalidRequest(f"the {what} is not base64url (RFC 7515 §2)")
    try:
        return binascii.a2b_base64(
            segment.translate(_TO_STANDARD) + _PAD[len(segment) % 4], strict_mode=True
        )
    except binascii.Error:
        raise InvalidRequest(f"the {what} is not base64url (RFC 7515 §2)") from None


def b64url_encode(data: bytes) -> bytes:
    """base64url without padding."""
    return (
        binascii.b2a_base64(data, newline=False)
        .translate(bytes.maketrans(b"+/", b"-_"))
        .rstrip(b"=")
    )


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A parsed, not yet verified, JWS in compact serialization."""

    header: dict[str, Any]
    payload: bytes
    signature: bytes
    signing_input: bytes


def parse_compact(token: bytes) -> CompactJws:
    """Split and decode a compact JWS (RFC 7515 §5.2 steps 1-7); the header is JSON-parsed.

    Five segments is a JWE (RFC 7516 §7.1) and is refused: SETs are accepted signed only.
    """
    parts = token.split(b".")
    if len(parts) != 3:
        if len(parts) == 5:
            raise InvalidRequest(
                "a 5-segment JWE is not accepted: the SET must be a JWS in compact serialization"
            )
        raise InvalidRequest(
            f"not a JWS in compact serialization: {len(parts)} segments, expected 3 (RFC 7515 §7.1)"
        )
    header_b64, payload_b64, sig_b64 = parts
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)]
    if not header_b64 or not payload_b64:
        raise InvalidRequest("the JWS header or payload segment is empty")
    header_json = b64url_decode(header_b64, "JWS header")
    try:
        header = orjson.loads(header_json)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the JWS header is not JSON (RFC 7515 §5.2 step 3)") from None
    if not isinstance(header, dict):
        raise InvalidRequest("the JWS header is not a JSON object (RFC 7515 §5.2 step 4)")
    return CompactJws(
        header=header,
        payload=b64url_decode(payload_b64, "JWS payload"),
        signature=b64url_decode(sig_b64, "JWS signature"),
        signing_input=signing_input,
    )


def key_fits(alg: str, key: PublicKey | bytes) -> bool:
    """Whether ``key`` is the right kind of key for ``alg`` (no key confusion)."""
    family = alg[:2]
    if family in ("RS", "PS"):
        return isinstance(key, rsa.RSAPublicKey)
    if family == "ES":
        curve = _EC_CURVES.get(alg)
        return (
            curve is not None
            and isinstance(key, ec.EllipticCurvePublicKey)
            and isinstance(key.curve, curve[0])
        )
    if alg == "EdDSA":
        return isinstance(key, Ed25519PublicKey | Ed448PublicKey)
    if family == "HS":
        return isinstance(key, bytes)
    return False


def verify_signature(
    alg: str, key: PublicKey | bytes, signing_input: bytes, signature: bytes
) -> bool:
    """RFC 7515 §5.2 step 8: True when ``signature`` is valid over ``signing_input``.

    Raises :class:`~ssf.errors.InvalidKey` if ``key`` does not fit ``alg`` or ``alg`` is not
    supported (callers check both first; this is the last line).
    """
    if alg not in SUPPORTED_ALGORITHMS or not key_fits(alg, key):
        raise InvalidKey(f"no {excerpt(alg)} verification with this key")
    try:
        if isinstance(key, bytes):
            expected = hmac.new(key, signing_input, _HMAC_DIGESTS[alg]).digest()
            return hmac.compare_digest(expected, signature)
        if isinstance(key, rsa.RSAPublicKey):
            hash_alg = _HASHES[alg[2:]]()
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if alg[0] == "R"
                else padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
            )
            key.verify(signature, signing_input, pad, hash_alg)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            size = _EC_CURVES[alg][1]
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            )
            key.verify(der, signing_input, ec.ECDSA(_HASHES[alg[2:]]()))
            return True
        key.verify(signature, signing_input)
        return True
    except InvalidSignature:
        return False
