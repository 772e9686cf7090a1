"""SET verification: per-transmitter policy, the registry of transmitters, the verifier.

:meth:`SetVerifier.verify` takes the body of a push (RFC 8935) or one SET of a poll response
(RFC 8936) and either returns a :class:`VerifiedSet` or raises :class:`~ssf.errors.SsfError`
with the RFC 8935 §2.4 code and a specific description. It does no replay check: the caller
asks a :class:`~ssf.replay.JtiStore` with the returned ``(issuer, jti)`` once the SET is
verified, so an unverified token can never burn a ``jti``.

The rules, in the order they are checked (the first failure decides the code):

1. Size: over the limit -> ``invalid_request``. The body must be ASCII (a compact JWS is).
2. RFC 7515 §7.1 compact serialization, exactly 3 segments (a 5-segment JWE is refused),
   strict base64url, header and payload JSON objects -> ``invalid_request``.
3. ``iss``: the (still unverified) issuer picks the transmitter's policy and keys; an
   issuer that is not configured -> ``invalid_issuer``. SSF 1.0 §4.1.6: "Receivers MUST
   validate that this claim matches the "iss" in the Stream Configuration data".
4. Header ``typ``. RFC 8417 §2.3: the "application/secevent+jwt" type "MUST be included if
   the SET could be used in an application context in which it could be confused with other
   kinds of JWTs"; SSF 1.0 §4.1.1: "SSF events MUST use explicit typing". Compared per
   RFC 7515 §4.1.9 (case-insensitive; "application/" implied when there is no "/"). A
   ``legacy`` transmitter may omit ``typ`` (Google's RISC tokens), never send another one.
   ``crit`` is refused: RFC 7515 §4.1.11, extensions "not understood and supported by the
   recipient" make the JWS invalid. -> ``invalid_request``.
5. Header ``alg`` in the transmitter's allow-list; ``none`` never; ``HS*`` only with the
   transmitter's own shared secret (an ``HS256`` token "signed" with the transmitter's RSA
   public key as HMAC secret is refused: HMAC never takes JWKS material) -> ``invalid_key``.
6. Key by ``kid`` from the transmitter's JWKS, one rate-limited refetch on an unknown
   ``kid``; the key type must fit ``alg`` -> ``invalid_key``.
7. Signature over the signing input (RFC 7515 §5.2 step 8) -> ``invalid_key``.
8. ``aud`` (a string or an array) must contain the audience configured for the transmitter
   -> ``invalid_audience``. RFC 7519 §4.1.3: "If the principal processing the claim does
   not identify itself with a value in the "aud" claim when this claim is present, then the
   JWT MUST be rejected"; here a missing ``aud`` is refused too.
9. ``iat`` required, not later than ``now`` + ``iat_skew_seconds``; ``jti`` required;
   ``events`` an object of ≥ 1 objects (RFC 8417 §2.2); ``txn`` a string if present
   (SSF 1.0 §4.1.9, kept). Strict mode (default): no ``sub`` (SSF 1.0 §4.1.2: "The JWT "sub"
   claim MUST NOT be present in any SET containing an SSF event"), no ``exp`` (§4.1.7: "The
   "exp" claim MUST NOT be used in SETs") and exactly one event (§4.2.1: the events claim
   "SHOULD contain only one event"; RFC 8417 §2.2: it "MUST NOT be used to express multiple
   independent logical events"). Not strict: ``exp`` and ``nbf`` are honoured when present
   (RFC 7519 §4.1.4: after ``exp`` the JWT "MUST NOT be accepted for processing"). Every
   event needs a subject (:func:`~ssf.events.events_of`). -> ``invalid_request``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson

from ssf.errors import InvalidAudience, InvalidIssuer, InvalidKey, InvalidRequest, excerpt
from ssf.events import SecurityEvent, audience_of, event_map, events_of, numeric_date
from ssf.jwks import JwksCache
from ssf.jws import (
    HMAC_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    PublicKey,
    hmac_min_bytes,
    parse_compact,
    verify_signature,
)

#: The default allow-list: asymmetric algorithms only.
DEFAULT_ALGORITHMS: Final[tuple[str, ...]] = ("RS256", "PS256", "ES256", "EdDSA")
DEFAULT_MAX_BYTES: Final = 64 * 1024
_WHITESPACE: Final = b" \t\r\n"
_SET_TYPE: Final = "application/secevent+jwt"


@dataclass(frozen=True, slots=True)
class TransmitterPolicy:
    """How one transmitter's SETs are checked. Invalid combinations raise ``ValueError``."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    hmac_secret: bytes | None = field(default=None, repr=False)
    strict: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    iat_skew_seconds: float = 60.0
    legacy: bool = False

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("a transmitter needs an issuer and an audience")
        if isinstance(self.algorithms, str):
            raise ValueError("algorithms is a sequence of names, not a string")
        algorithms = tuple(self.algorithms)
        object.__setattr__(self, "algorithms", algorithms)
        if not algorithms:
            raise ValueError("the algorithm allow-list is empty")
        for alg in algorithms:
            if alg.lower() == "none":
                raise ValueError('"none" is never an allowed algorithm')
            if alg not in SUPPORTED_ALGORITHMS:
                raise ValueError(f"unsupported algorithm {alg!r}")
            if alg in HMAC_ALGORITHMS:
                if self.hmac_secret is None:
                    raise ValueError(f"{alg} is allowed only with a shared hmac_secret")
                if len(self.hmac_secret) < hmac_min_bytes(alg):
                    raise ValueError(
                        f"{alg} needs a secret of at least {hmac_min_bytes(alg)} bytes "
                        "(RFC 7518 §3.2)"
                    )
        if self.max_bytes <= 0 or self.iat_skew_seconds < 0:
            raise ValueError("max_bytes must be > 0 and iat_skew_seconds >= 0")


@dataclass(frozen=True, slots=True)
class Transmitter:
    """A configured transmitter: its policy and its keys."""

    policy: TransmitterPolicy
    keys: JwksCache


class TransmitterRegistry:
    """The configured transmitters, by issuer."""

    def __init__(self, transmitters: Iterable[Transmitter] = ()) -> None:
        self._by_issuer: dict[str, Transmitter] = {}
        for transmitter in transmitters:
            self._by_issuer[transmitter.policy.issuer] = transmitter

    def add(self, policy: TransmitterPolicy, keys: JwksCache) -> Transmitter:
        """Add or replace the transmitter for ``policy.issuer``."""
        transmitter = Transmitter(policy, keys)
        self._by_issuer[policy.issuer] = transmitter
        return transmitter

    def remove(self, issuer: str) -> None:
        self._by_issuer.pop(issuer, None)

    def get(self, issuer: str) -> Transmitter | None:
        return self._by_issuer.get(issuer)

    def __contains__(self, issuer: object) -> bool:
        return issuer in self._by_issuer

    def __iter__(self) -> Iterator[Transmitter]:
        return iter(list(self._by_issuer.values()))

    def __len__(self) -> int:
        return len(self._by_issuer)

    @property
    def max_bytes(self) -> int:
        """The largest size limit of any transmitter (the limit before ``iss`` is known)."""
        return max(
            (t.policy.max_bytes for t in self._by_issuer.values()), default=DEFAULT_MAX_BYTES
        )


@dataclass(frozen=True, slots=True)
class VerifiedSet:
    """A SET that passed every check, and its events."""

    issuer: str
    jti: str
    iat: datetime
    txn: str | None
    audience: tuple[str, ...]
    events: tuple[SecurityEvent, ...]
    kid: str | None
    alg: str


def _is_set_type(typ: str) -> bool:
    media = typ.lower()
    if "/" not in media:
        media = "application/" + media
    return media == _SET_TYPE


class SetVerifier:
    """Verifies SETs against the transmitters of a :class:`TransmitterRegistry`.

    ``max_bytes`` caps a body before its issuer is known (default: the largest limit of the
    registered transmitters); each transmitter's own ``max_bytes`` applies after.
    """

    def __init__(self, registry: TransmitterRegistry, *, max_bytes: int | None = None) -> None:
        self.registry = registry
        self.max_bytes = max_bytes

    async def verify(self, token: bytes | str, *, now: datetime) -> VerifiedSet:
        """Verify one SET at time ``now`` (timezone-aware). Raises ``SsfError`` on refusal."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        raw = self._body(token)
        jws = parse_compact(raw)
        claims = _json_object(jws.payload)

        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise InvalidRequest(f"the iss claim must be a non-empty string, not {excerpt(issuer)}")
        transmitter = self.registry.get(issuer)
        if transmitter is None:
            raise InvalidIssuer(f"issuer {excerpt(issuer)} is not a configured transmitter")
        policy = transmitter.policy
        if len(raw) > policy.max_bytes:
            raise InvalidRequest(
                f"the SET is {len(raw)} bytes, over the {policy.max_bytes}-byte limit"
            )

        header = jws.header
        alg = _checked_alg(header, policy)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidRequest(f"the kid header must be a string, not {excerpt(kid)}")
        key: PublicKey | bytes
        if alg in HMAC_ALGORITHMS:
            assert policy.hmac_secret is not None  # TransmitterPolicy guarantees it
            key = policy.hmac_secret
        else:
            cached = transmitter.keys.cached(kid, alg)
            key = cached if cached is not None else await transmitter.keys.key(kid, alg, now=now)
        if not verify_signature(alg, key, jws.signing_input, jws.signature):
            raise InvalidKey(
                f"the {alg} signature does not verify"
                + (f" with kid {excerpt(kid)}" if kid else "")
            )

        return _checked_claims(claims, policy, now, kid=kid, alg=alg)

    def _body(self, token: bytes | str) -> bytes:
        if isinstance(token, str):
            try:
                raw = token.encode("ascii")
            except UnicodeEncodeError:
                raise InvalidRequest("the SET is not ASCII, so not a compact JWS") from None
        elif isinstance(token, bytes | bytearray | memoryview):
            raw = bytes(token)
        else:
            raise InvalidRequest(f"the SET must be bytes or str, not {type(token).__name__}")
        limit = self.max_bytes if self.max_bytes is not None else self.registry.max_bytes
        if len(raw) > limit:
            raise InvalidRequest(f"the SET is {len(raw)} bytes, over the {limit}-byte limit")
        raw = raw.strip(_WHITESPACE)
        if not raw:
            raise InvalidRequest("the body is empty")
        if not raw.isascii():
            raise InvalidRequest("the SET is not ASCII, so not a compact JWS")
        return raw


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the JWS payload is not JSON (RFC 7519 §7.2 step 10)") from None
    if not isinstance(claims, dict):
        raise InvalidRequest("the JWS payload is not a JSON object (a JWT Claims Set)")
    return claims


def _checked_alg(header: dict[str, Any], policy: TransmitterPolicy) -> str:
    typ = header.get("typ")
    if typ is None:
        if not policy.legacy:
            raise InvalidRequest(
                'the JWS header has no typ; SETs must be typed "secevent+jwt" (SSF 1.0 §4.1.1)'
            )
    elif not isinstance(typ, str) or not _is_set_type(typ):
        raise InvalidRequest(f'typ {excerpt(typ)} is not "secevent+jwt" (RFC 8417 §2.3)')
    if "crit" in header:
        raise InvalidRequest("crit header parameters are not supported (RFC 7515 §4.1.11)")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise InvalidRequest(f"the alg header must be a non-empty string, not {excerpt(alg)}")
    if alg.lower() == "none":
        raise InvalidKey('alg "none" is never accepted: SETs must be signed')
    if alg not in policy.algorithms:
        raise InvalidKey(
            f"alg {excerpt(alg)} is not allowed for this transmitter "
            f"(allowed: {', '.join(policy.algorithms)})"
        )
    return alg


def _checked_claims(
    claims: dict[str, Any], policy: TransmitterPolicy, now: datetime, *, kid: str | None, alg: str
) -> VerifiedSet:
    audience = audience_of(claims)
    if policy.audience not in audience:
        raise InvalidAudience(
            f"aud {excerpt(list(audience))} does not contain this receiver's audience"
            if audience
            else "the aud claim is missing"
        )
    now_ts = now.timestamp()
    iat = numeric_date(claims, "iat")
    if iat is None:
        raise InvalidRequest("the iat claim is required")
    ahead = iat.timestamp() - now_ts
    if ahead > policy.iat_skew_seconds:
        raise InvalidRequest(
            f"iat is {ahead:.0f} s in the future (allowed skew {policy.iat_skew_seconds:g} s)"
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidRequest(f"the jti claim must be a non-empty string, not {excerpt(jti)}")
    events = event_map(claims)
    if policy.strict:
        if "sub" in claims:
            raise InvalidRequest(
                'strict mode: the "sub" claim must not be present (SSF 1.0 §4.1.2)'
            )
        if "exp" in claims:
            raise InvalidRequest(
                'strict mode: the "exp" claim must not be present (SSF 1.0 §4.1.7)'
            )
        if len(events) != 1:
            raise InvalidRequest(
                f"strict: the events claim must hold exactly one event, not {len(events)}"
            )
    else:
        exp = numeric_date(claims, "exp")
        if exp is not None and now_ts >= exp.timestamp() + policy.iat_skew_seconds:
            raise InvalidRequest("the SET has expired (exp)")
    nbf = numeric_date(claims, "nbf")
    if nbf is not None and nbf.timestamp() - now_ts > policy.iat_skew_seconds:
        raise InvalidRequest("the SET is not valid yet (nbf)")
    parsed = events_of(claims, legacy=policy.legacy)
    first = parsed[0]
    return VerifiedSet(
        issuer=first.issuer,
        jti=first.jti,
        iat=first.iat,
        txn=first.txn,
        audience=first.audience,
        events=parsed,
        kid=kid,
        alg=alg,
    )
