"""OIDC bearer JWTs: access tokens from the configured issuer (RFC 6750, RFC 7519, RFC 8725).

The checks, in order; any failure is one opaque ``invalid_token`` to the caller (RFC 6750
§3.1) with the reason in the log:

1. a JWS in compact serialization (RFC 7515 §7.1); a JWE or anything else is refused;
2. ``alg`` in the configured allow-list — asymmetric only, never ``none`` or ``HS*``
   (RFC 8725 §2.1, §3.1: "libraries MUST enable the caller to specify a supported set of
   algorithms and MUST NOT use any other algorithms"); ``crit`` is refused (RFC 7515
   §4.1.11: we understand no extensions); ``typ``, when present, must be ``JWT`` or
   ``at+jwt`` (RFC 9068 §2.1; RFC 8725 §3.11: explicit typing keeps a SET or an ID token of
   another kind from passing as an access token);
3. the key by ``kid`` from the issuer's JWKS (RFC 7517 §5), fetched over HTTPS (http only on
   loopback), cached and refetched on an unknown ``kid`` at most once a minute
   (``ssf.jwks.JwksCache``); a key that does not fit ``alg`` is refused (no key confusion);
4. the signature (RFC 7515 §5.2);
5. claims (RFC 7519 §4.1, §7.2): ``iss`` equal to the configured issuer (RFC 8725 §3.8);
   ``aud`` containing the configured audience (RFC 7519 §4.1.3: "If the principal ...
   does not identify itself with a value in the "aud" claim ... the JWT MUST be
   rejected"; RFC 8725 §3.9); ``exp`` required and in the future, ``nbf`` and ``iat`` not
   in the future, each with ``leeway_seconds`` of clock skew (RFC 7519 §4.1.4, §4.1.5);
6. roles from ``roles_claim`` (a dotted path, e.g. Keycloak's ``realm_access.roles``),
   through ``role_map``; the tenant from ``tenant_claim`` — a token without one is refused,
   and only the configured ``all_tenants_value`` spans every tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
import orjson
import structlog

from ssf.errors import SsfError
from ssf.jwks import JwksCache
from ssf.jws import parse_compact, verify_signature
from tokenwarden.auth.principal import Principal, Role
from tokenwarden.auth.settings import OidcSettings

log = structlog.get_logger("tokenwarden.auth")

_ROLE_NAMES = frozenset(r.value for r in Role)
_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt", "application/jwt"})


class InvalidToken(Exception):
    """A bearer token that is not accepted; the message is for the log only."""


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (``realm_access.roles``), or ``None``. A claim whose
    own name contains dots (``https://example.com/roles``) is found by its full name first."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


class BearerVerifier:
    """Verifies the configured issuer's access tokens; the JWKS comes over ``client``."""

    def __init__(self, settings: OidcSettings, *, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.algorithms = frozenset(settings.algorithms)
        self.jwks = JwksCache(
            jwks_uri=settings.jwks_uri,
            client=client,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
        )

    async def verify(self, token: str, *, now: datetime) -> Principal:
        """The principal of a valid token; :class:`InvalidToken` otherwise."""
        try:
            return await self._verify(token, now=now)
        except SsfError as exc:  # malformed JWS, unusable key
            raise InvalidToken(exc.description) from None

    async def _verify(self, token: str, *, now: datetime) -> Principal:
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidToken("not ASCII") from None
        jws = parse_compact(raw)
        alg = jws.header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(f"alg {str(alg)[:20]!r} is not allowed")
        if "crit" in jws.header:
            raise InvalidToken("crit header parameters are not understood")
        typ = jws.header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _TYPES):
            raise InvalidToken(f"typ {str(typ)[:40]!r} is not an access token type")
        kid = jws.header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("kid is not a string")
        key = await self.jwks.key(kid, alg, now=now)
        if not verify_signature(alg, key, jws.signing_input, jws.signature):
            raise InvalidToken("bad signature")
        try:
            claims = orjson.loads(jws.payload)
        except orjson.JSONDecodeError:
            raise InvalidToken("the payload is not JSON") from None
        if not isinstance(claims, dict):
            raise InvalidToken("the payload is not a JSON object")
        self._check_claims(claims, now=now)
        return self._principal(claims)

    def _check_claims(self, claims: dict[str, Any], *, now: datetime) -> None:
        cfg = self.settings
        if claims.get("iss") != cfg.issuer:
            raise InvalidToken("wrong issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if cfg.audience not in audiences:
            raise InvalidToken("wrong audience")
        t = now.timestamp()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidToken("no exp")
        if t >= exp + cfg.leeway_seconds:
            raise InvalidToken("expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidToken(f"{name} is not a number")
            if value > t + cfg.leeway_seconds:
                raise InvalidToken(f"{name} is in the future")

    def _principal(self, claims: dict[str, Any]) -> Principal:
        cfg = self.settings
        subject = claims.get("sub") or claims.get("client_id") or claims.get("azp")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("no sub")
        tenant = claim_at(claims, cfg.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise InvalidToken("no tenant claim")
        roles: set[Role] = set()
        for name in _names(claim_at(claims, cfg.roles_claim)):
            mapped = cfg.role_map.get(name, name)
            if mapped in _ROLE_NAMES:
                roles.add(Role(mapped))
        return Principal(
            tenant=None if tenant == cfg.all_tenants_value else tenant,
            roles=frozenset(roles),
            scopes=frozenset(),
            kind="bearer",
            subject=subject[:256],
        )


__all__ = ["BearerVerifier", "InvalidToken", "claim_at"]
