"""Settings of authentication (``[auth]``, ``[auth.oidc]``).

```toml
[auth]
key_cache_seconds = 5          # a verified API key is remembered this long

[auth.oidc]                    # bearer JWTs from your IdP (optional)
issuer = "https://idp.example.com/realms/ops"
audience = "tokenwarden"
jwks_uri = "https://idp.example.com/realms/ops/protocol/openid-connect/certs"
roles_claim = "realm_access.roles"   # dotted path; a list or a space-separated string
tenant_claim = "tenant"
all_tenants_value = "*"        # a tenant claim of "*" spans every tenant (unset: never)
role_map = { "tw-admins" = "admin" }  # IdP role names -> viewer | responder | admin
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Asymmetric JWS algorithms (RFC 7518 §3.1, RFC 8037) a bearer token may use. ``none``
#: and the HMAC family never: RFC 8725 §3.1 "libraries MUST enable the caller to specify a
#: supported set of algorithms"; an HMAC "key" would be the IdP's public key (§2.1).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcSettings(BaseModel):
    """The one OIDC issuer whose access tokens (JWTs) the admin API accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1, description="the exact iss of accepted tokens")
    audience: str = Field(min_length=1, description="a value the token's aud must contain")
    jwks_uri: str = Field(
        pattern=r"^https?://", description="the IdP's JWKS (https, or http on loopback)"
    )
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"])
    leeway_seconds: float = Field(default=60.0, ge=0, le=600)
    roles_claim: str = Field(default="roles", min_length=1)
    tenant_claim: str = Field(default="tenant", min_length=1)
    all_tenants_value: str | None = Field(
        default=None, description="tenant claim value that spans every tenant (unset: none)"
    )
    role_map: dict[str, str] = Field(
        default_factory=dict, description="IdP role name -> viewer | responder | admin"
    )
    jwks_min_refresh_seconds: float = Field(default=60.0, ge=0)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        bad = sorted(set(value) - ASYMMETRIC_ALGORITHMS)
        if bad:
            raise ValueError(
                f"algorithms {bad} are not allowed for bearer tokens; "
                f"use some of {sorted(ASYMMETRIC_ALGORITHMS)} (never none or HS*)"
            )
        if not value:
            raise ValueError("give at least one algorithm")
        return value

    @field_validator("role_map")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({r for r in value.values() if r not in {"viewer", "responder", "admin"}})
        if bad:
            raise ValueError(f"role_map maps to unknown roles {bad}")
        return value


class AuthSettings(BaseModel):
    """``[auth]``: the API-key cache, and optionally an OIDC issuer for bearer JWTs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    oidc: OidcSettings | None = None
    key_cache_seconds: float = Field(default=5.0, ge=0, le=300)


__all__ = ["ASYMMETRIC_ALGORITHMS", "AuthSettings", "OidcSettings"]
