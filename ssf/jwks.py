"""A transmitter's JSON Web Key Set: fetched, parsed once, cached, refetched on an unknown ``kid``.

SSF 1.0 §4.1.4: "The signature key can be obtained through "jwks_uri""; §7.1: ``jwks_uri``
is the "URL of the Transmitter's JSON Web Key Set [RFC7517] document. This contains the
signing key(s) the Receiver uses to validate signatures from the Transmitter. [...] If
present, this URL MUST use HTTP over TLS". Transmitters rotate keys, so a token whose
``kid`` is not in the cached set triggers one refetch — at most one per
``min_refresh_seconds`` (default 60) per transmitter, measured on the ``now`` the caller
passes in, so a flood of made-up ``kid`` values costs the transmitter one request a minute,
not one per token. Concurrent misses share one fetch.

RFC 7517 §5: a JWK Set is a JSON object with a ``keys`` member whose value is an array of
JWKs. Each JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2) is parsed once into a
``cryptography`` public key object:

- ``kty: RSA`` (``n``, ``e``), modulus of at least 2048 bits (RFC 7518 §3.3: "A key of size
  2048 bits or larger MUST be used with these algorithms");
- ``kty: EC`` with ``crv`` P-256 / P-384 / P-521 (``x``, ``y``; the point must be on the curve);
- ``kty: OKP`` with ``crv`` Ed25519 / Ed448 (``x``).

Keys with ``use`` other than ``sig``, with ``key_ops`` lacking ``verify``, ``kty: oct``
(a shared secret has no business in a published JWKS; HMAC secrets come only from the
transmitter's policy) or unknown types are skipped and listed in :attr:`JwksCache.skipped`.
A document that is not a JWK Set, is over ``max_bytes``, or cannot be fetched is an error
(``invalid_key``); after a good first fetch such a failure keeps the previous keys. A good
JWK Set replaces the keys entirely: a key the transmitter withdrew stops verifying.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ssf.errors import InvalidKey, SsfError, excerpt
from ssf.jws import PublicKey, b64url_decode, key_fits
from ssf.remote import is_loopback

_CURVES: Final[dict[str, tuple[ec.EllipticCurve, int]]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_MIN_RSA_BITS: Final = 2048


@dataclass(frozen=True, slots=True)
class JsonWebKey:
    """One usable verification key of a JWKS."""

    kid: str | None
    kty: str
    alg: str | None
    key: PublicKey


def _member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing {name}")
    try:
        return b64url_decode(value.encode("ascii"), f"JWK {name}")
    except (UnicodeEncodeError, SsfError):
        raise ValueError(f"{name} is not base64url") from None


def parse_jwk(jwk: Mapping[str, Any]) -> JsonWebKey:
    """One JWK -> a ready-to-verify key; ``ValueError`` says why a key is unusable."""
    kty = jwk.get("kty")
    kid = jwk.get("kid")
    alg = jwk.get("alg")
    if kid is not None and not isinstance(kid, str):
        raise ValueError("kid is not a string")
    if alg is not None and not isinstance(alg, str):
        raise ValueError("alg is not a string")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise ValueError(f"use is {excerpt(use)}, not sig")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError("key_ops does not include verify")
    key: PublicKey
    if kty == "RSA":
        n = int.from_bytes(_member(jwk, "n"), "big")
        e = int.from_bytes(_member(jwk, "e"), "big")
        if n.bit_length() < _MIN_RSA_BITS:
            raise ValueError(f"RSA modulus of {n.bit_length()} bits is under {_MIN_RSA_BITS}")
        key = rsa.RSAPublicNumbers(e, n).public_key()
    elif kty == "EC":
        crv = jwk.get("crv")
        if not isinstance(crv, str) or crv not in _CURVES:
            raise ValueError(f"unsupported EC curve {excerpt(crv)}")
        curve, size = _CURVES[crv]
        x, y = _member(jwk, "x"), _member(jwk, "y")
        if len(x) != size or len(y) != size:
            raise ValueError(f"{crv} coordinates must be {size} bytes")
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + x + y)
    elif kty == "OKP":
        crv = jwk.get("crv")
        x = _member(jwk, "x")
        if crv == "Ed25519":
            key = Ed25519PublicKey.from_public_bytes(x)
        elif crv == "Ed448":
            key = Ed448PublicKey.from_public_bytes(x)
        else:
            raise ValueError(f"unsupported OKP curve {excerpt(crv)}")
    elif kty == "oct":
        raise ValueError("symmetric (oct) keys are never taken from a JWKS")
    else:
        raise ValueError(f"unsupported kty {excerpt(kty)}")
    return JsonWebKey(kid=kid, kty=kty, alg=alg, key=key)


def parse_jwks(document: object) -> tuple[tuple[JsonWebKey, ...], tuple[str, ...]]:
    """A JWK Set (RFC 7517 §5) -> (usable keys, reasons for the skipped ones).

    Raises :class:`~ssf.errors.InvalidKey` if ``document`` is not a JWK Set.
    """
    if isinstance(document, bytes | str):
        try:
            document = orjson.loads(document)
        except orjson.JSONDecodeError:
            raise InvalidKey("the JWKS is not JSON") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise InvalidKey('the JWKS is not a JSON object with a "keys" array (RFC 7517 §5)')
    keys: list[JsonWebKey] = []
    skipped: list[str] = []
    for index, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, Mapping):
            skipped.append(f"keys[{index}]: not an object")
            continue
        try:
            keys.append(parse_jwk(jwk))
        except (ValueError, TypeError) as error:
            skipped.append(f"keys[{index}] kid={excerpt(jwk.get('kid'))}: {error}")
    return tuple(keys), tuple(skipped)


class JwksCache:
    """The verification keys of one transmitter.

    Give either ``jwks`` (inline: a JWK Set object or its JSON bytes; never refetched) or
    ``jwks_uri`` with an injected ``client``. ``jwks_uri`` must be ``https`` (SSF 1.0 §7.1)
    unless it points at a loopback address or ``allow_http`` is set.
    """

    def __init__(
        self,
        *,
        jwks_uri: str | None = None,
        jwks: Mapping[str, Any] | bytes | None = None,
        client: httpx.AsyncClient | None = None,
        min_refresh_seconds: float = 60.0,
        max_bytes: int = 256 * 1024,
        timeout_seconds: float = 10.0,
        allow_http: bool = False,
    ) -> None:
        if (jwks_uri is None) == (jwks is None):
            raise ValueError("give exactly one of jwks_uri and jwks")
        if jwks_uri is not None:
            if client is None:
                raise ValueError("a jwks_uri needs an httpx.AsyncClient")
            scheme = urlsplit(jwks_uri).scheme
            if scheme != "https" and not (
                scheme == "http" and (allow_http or is_loopback(jwks_uri))
            ):
                raise ValueError(f"jwks_uri must use https (SSF 1.0 §7.1): {jwks_uri!r}")
        if min_refresh_seconds < 0 or max_bytes <= 0:
            raise ValueError("min_refresh_seconds must be >= 0 and max_bytes > 0")
        self.jwks_uri = jwks_uri
        self.min_refresh_seconds = min_refresh_seconds
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self._client = client
        self._lock = asyncio.Lock()
        self._keys: tuple[JsonWebKey, ...] = ()
        self._by_kid: dict[str | None, list[JsonWebKey]] = {}
        self.skipped: tuple[str, ...] = ()
        self.fetches = 0
        self.last_fetch_at: float | None = None
        self.last_error: str | None = None
        if jwks is not None:
            self._install(*parse_jwks(jwks))

    @property
    def keys(self) -> tuple[JsonWebKey, ...]:
        """The usable keys now cached."""
        return self._keys

    def _install(self, keys: tuple[JsonWebKey, ...], skipped: tuple[str, ...]) -> None:
        by_kid: dict[str | None, list[JsonWebKey]] = {}
        for jwk in keys:
            by_kid.setdefault(jwk.kid, []).append(jwk)
        self._keys, self._by_kid, self.skipped = keys, by_kid, skipped

    def cached(self, kid: str | None, alg: str) -> PublicKey | None:
        """The cached key for ``kid`` usable with ``alg``, or None if there is no such ``kid``.

        Raises :class:`~ssf.errors.InvalidKey` if the ``kid`` is known but its key does not
        fit ``alg`` (wrong key type or curve, or the JWK's own ``alg`` differs): that is key
        confusion, and no refetch will fix it. Without a ``kid``, the only key of the set
        that fits ``alg`` is used; several candidates are refused.
        """
        if kid is None:
            fitting = [k for k in self._keys if key_fits(alg, k.key) and k.alg in (None, alg)]
            if len(fitting) == 1:
                return fitting[0].key
            if not fitting:
                return None
            raise InvalidKey(f"the token has no kid and {len(fitting)} keys fit {alg}")
        candidates = self._by_kid.get(kid)
        if not candidates:
            return None
        for jwk in candidates:
            if key_fits(alg, jwk.key) and jwk.alg in (None, alg):
                return jwk.key
        found = candidates[0]
        raise InvalidKey(
            f"key {excerpt(kid)} is a {found.kty} key"
            + (f" for {found.alg}" if found.alg else "")
            + f" and cannot verify {alg}"
        )

    def refresh_allowed(self, now: datetime) -> bool:
        """Whether the rate limit lets a (re)fetch happen at ``now``."""
        if self.jwks_uri is None:
            return False
        if self.last_fetch_at is None:
            return True
        elapsed = now.timestamp() - self.last_fetch_at
        return elapsed < 0 or elapsed >= self.min_refresh_seconds

    async def key(self, kid: str | None, alg: str, *, now: datetime) -> PublicKey:
        """The key for ``kid`` and ``alg``, refetching the JWKS once if ``kid`` is unknown.

        Raises :class:`~ssf.errors.InvalidKey` when no usable key is found.
        """
        found = self.cached(kid, alg)
        if found is not None:
            return found
        async with self._lock:
            found = self.cached(kid, alg)  # another task may have refetched meanwhile
            if found is not None:
                return found
            why = "not in the configured JWKS"
            if self.jwks_uri is not None:
                if self.refresh_allowed(now):
                    await self._fetch(now)
                    found = self.cached(kid, alg)
                    if found is not None:
                        return found
                    why = (
                        f"not in the JWKS (refetch failed: {self.last_error})"
                        if self.last_error
                        else "not in the JWKS, refetched just now"
                    )
                else:
                    assert self.last_fetch_at is not None
                    ago = now.timestamp() - self.last_fetch_at
                    why = (
                        f"not in the JWKS fetched {ago:.0f} s ago "
                        f"(refetch at most every {self.min_refresh_seconds:g} s)"
                    )
        label = "no kid" if kid is None else f"kid {excerpt(kid)}"
        raise InvalidKey(f"{label} for {alg}: {why}")

    async def refresh(self, *, now: datetime) -> bool:
        """Fetch the JWKS now if the rate limit allows; True if a fetch was made."""
        async with self._lock:
            if not self.refresh_allowed(now):
                return False
            await self._fetch(now)
            return True

    async def _fetch(self, now: datetime) -> None:
        assert self.jwks_uri is not None and self._client is not None
        self.last_fetch_at = now.timestamp()
        self.fetches += 1
        try:
            body = await self._download(self.jwks_uri)
            keys, skipped = parse_jwks(body)
        except SsfError as error:
            self.last_error = error.description
            return
        self.last_error = None
        self._install(keys, skipped)

    async def _download(self, url: str) -> bytes:
        assert self._client is not None
        try:
            async with self._client.stream(
                "GET",
                url,
                headers={"Accept": "application/jwk-set+json, application/json"},
                timeout=self.timeout_seconds,
            ) as response:
                if response.status_code != 200:
                    raise InvalidKey(f"JWKS fetch answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    raise InvalidKey(f"JWKS of {declared} bytes is over {self.max_bytes}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise InvalidKey(f"JWKS is over {self.max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise InvalidKey(f"JWKS fetch failed: {type(error).__name__}") from None
