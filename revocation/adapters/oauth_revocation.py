"""``oauth_revocation``: RFC 7009 token revocation at the identity provider.

RFC 7009 §2.1: the client "makes an HTTP POST request to the token revocation endpoint URL"
with ``token`` and optionally ``token_type_hint`` (``refresh_token`` / ``access_token``),
form-encoded, authenticating as in RFC 6749 §2.3 (``revocation.adapters.client_auth``:
``client_secret_basic``, ``client_secret_post``, ``private_key_jwt`` per RFC 7523). "If the
particular token is a refresh token and the authorization server supports the revocation
of access tokens, then the authorization server SHOULD also invalidate all access tokens
based on the same authorization grant" — revoking a family's refresh token ends the grant.

RFC 7009 §2.2: "The authorization server responds with HTTP status code 200 if the token
has been revoked successfully or if the client submitted an invalid token" — so revoking
twice is harmless and a redelivery is idempotent. §2.2.1: ``unsupported_token_type`` means
the server cannot revoke that kind of token (skipped, counted); a 503 means "try again
later" (retried, honouring ``Retry-After``); a 401 or ``invalid_client`` is our
configuration (a permanent failure, still retried at the longest backoff, and surfaced).

Which tokens: the order's family or families, newest first, of the configured types
(``refresh_token`` by default), at most ``max_tokens`` per delivery. RFC 7009 needs the
token itself: this works where the IdP's token identifier is its handle — opaque tokens
whose jti is the token value, as with oidc-provider — because tokenwarden only ever holds
identifiers. Ids that are our keyed hashes (``h1:…``, raw tokens hashed at the edge) cannot
be revoked at the IdP and are counted as ``skipped_hashed``; the store and the denylist
still deny them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from revocation.adapters.client_auth import (
    ClientAuth,
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    load_private_key,
)
from revocation.adapters.config import parse
from revocation.adapters.http import retry_after, transport_error
from revocation.delivery import (
    AdapterConfigError,
    AdapterDeps,
    AdapterPlugin,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
)
from revocation.order import Action, TargetKind

HASH_PREFIX = "h1:"
TokenType = Literal["refresh_token", "access_token"]
DEFAULT_TOKEN_TYPES: tuple[TokenType, ...] = ("refresh_token",)


class OAuthRevocationConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    revocation_endpoint: str = Field(pattern=r"^https?://")
    client_id: str = Field(min_length=1)
    auth_method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] = (
        "client_secret_basic"
    )
    client_secret: SecretStr | None = None
    private_key: SecretStr | None = Field(default=None, description="PEM")
    private_key_file: Path | None = None
    key_id: str | None = None
    signing_alg: Literal["RS256", "PS256", "ES256", "EdDSA"] = "RS256"
    assertion_audience: str | None = Field(
        default=None, description="aud of the client assertion (default: the endpoint URL)"
    )
    assertion_lifetime_seconds: int = Field(default=60, gt=0, le=3600)
    token_types: list[TokenType] = Field(default_factory=lambda: list(DEFAULT_TOKEN_TYPES))
    max_tokens: int = Field(default=20, ge=1, le=1000)
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _credentials(self) -> OAuthRevocationConfig:
        if self.auth_method == "private_key_jwt":
            if (self.private_key is None) == (self.private_key_file is None):
                raise ValueError(
                    "private_key_jwt needs exactly one of private_key, private_key_file"
                )
        elif self.client_secret is None:
            raise ValueError(f"{self.auth_method} needs client_secret")
        return self


def client_auth_of(config: OAuthRevocationConfig) -> ClientAuth:
    """The configured client authentication."""
    if config.auth_method == "client_secret_basic":
        assert config.client_secret is not None
        return ClientSecretBasic(config.client_id, config.client_secret.get_secret_value())
    if config.auth_method == "client_secret_post":
        assert config.client_secret is not None
        return ClientSecretPost(config.client_id, config.client_secret.get_secret_value())
    pem = (
        config.private_key.get_secret_value().encode()
        if config.private_key is not None
        else Path(config.private_key_file or "").read_bytes()
    )
    return PrivateKeyJwt(
        config.client_id,
        load_private_key(pem),
        audience=config.assertion_audience or config.revocation_endpoint,
        alg=config.signing_alg,
        kid=config.key_id,
        lifetime=timedelta(seconds=config.assertion_lifetime_seconds),
    )


class OAuthRevocation:
    """Revokes an order's tokens at one authorization server (an ``Adapter``)."""

    def __init__(
        self,
        name: str,
        config: OAuthRevocationConfig,
        http: httpx.AsyncClient,
        auth: ClientAuth | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.http = http
        self.auth = auth or client_auth_of(config)

    def candidates(self, delivery: Delivery) -> tuple[list[tuple[str, str | None]], int]:
        """(token id, type hint) to revoke, newest first; and how many hashed ids were
        skipped."""
        wanted = set(self.config.token_types)
        out: list[tuple[str, str | None]] = []
        hashed = 0
        order = delivery.order
        if order.target.kind == TargetKind.TOKEN:
            out.append((order.target.value, None))
        for tok in delivery.scope.tokens:
            if tok.type not in wanted or any(t == tok.token_id for t, _ in out):
                continue
            out.append((tok.token_id, tok.type))
        kept: list[tuple[str, str | None]] = []
        for token, hint in out:
            if token.startswith(HASH_PREFIX):
                hashed += 1
            elif len(kept) < self.config.max_tokens:
                kept.append((token, hint))
        return kept, hashed

    async def revoke(self, token: str, hint: str | None, *, now: datetime) -> str:
        """One RFC 7009 §2.1 request; ``revoked`` or ``unsupported``, else raises."""
        form = {"token": token}
        if hint:
            form["token_type_hint"] = hint
        headers = {"Accept": "application/json"}
        self.auth.apply(form, headers, now=now)
        try:
            response = await self.http.post(
                self.config.revocation_endpoint,
                data=form,
                headers=headers,
                timeout=self.config.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise transport_error(
                exc, what=f"revocation endpoint {self.config.revocation_endpoint}"
            ) from exc
        if response.status_code == 200:
            return "revoked"
        error = ""
        try:
            body = response.json()
            error = str(body.get("error", "")) if isinstance(body, dict) else ""
        except ValueError:
            pass
        if response.status_code == 400 and error == "unsupported_token_type":
            return "unsupported"
        what = f"revocation endpoint answered {response.status_code} {error}".rstrip()
        if response.status_code in (429, 503) or response.status_code >= 500:
            raise DeliveryError(what, retry_after=retry_after(response))
        raise PermanentDeliveryError(what + " (check the client's credentials and registration)")

    async def deliver(self, delivery: Delivery, *, now: datetime) -> Mapping[str, Any]:
        tokens, hashed = self.candidates(delivery)
        counts = {"revoked": 0, "unsupported": 0, "skipped_hashed": hashed}
        for token, hint in tokens:
            counts[await self.revoke(token, hint, now=now)] += 1
        return counts

    async def aclose(self) -> None:
        return None


def _build(name: str, config: Mapping[str, Any], deps: AdapterDeps) -> OAuthRevocation:
    parsed = parse(OAuthRevocationConfig, name, config)
    try:
        auth = client_auth_of(parsed)
    except (OSError, ValueError) as exc:
        raise AdapterConfigError(f"adapter {name!r}: client authentication: {exc}") from None
    return OAuthRevocation(name, parsed, deps.http, auth)


PLUGIN = AdapterPlugin(
    type="oauth_revocation",
    actions=frozenset({Action.REVOKE, Action.KILL_SWITCH}),
    build=_build,
    description="RFC 7009 revocation at the IdP (client_secret_basic/post, private_key_jwt)",
)
