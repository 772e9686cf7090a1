"""Settings: ``TOKENWARDEN_*`` environment variables over an optional TOML file.

Built once at start (``load_settings``), never at import, and passed to what needs them.
Environment variables win over the file; nested keys use ``__`` in the environment
(``TOKENWARDEN_DETECTORS__REFRESH_REUSE__GRACE_SECONDS=5``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tokenwarden.auth.settings import AuthSettings
from tokenwarden.revocation_settings import RevocationSettings
from tokenwarden.stream.settings import KafkaSettings


class ConfigError(ValueError):
    """The configuration file or environment is not usable."""


class TransmitterSettings(BaseModel):
    """One SSF transmitter we receive from (``[[ssf.transmitters]]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    authorization_header: SecretStr | None = Field(
        default=None, description="the exact Authorization header the transmitter sends"
    )
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"])
    hmac_secret: SecretStr | None = None
    strict: bool = True
    legacy: bool = False
    max_bytes: int = Field(default=64 * 1024, ge=1024)
    iat_skew_seconds: float = Field(default=60.0, ge=0)
    tenant: str = Field(default="default", min_length=1)
    tenant_from_subject: bool = False
    application_as: Literal["client", "agent", "both"] = "both"
    delivery: Literal["push", "poll"] = "push"
    poll_endpoint: str | None = Field(default=None, description="RFC 8936 endpoint, for poll")
    bearer_token: SecretStr | None = Field(
        default=None, description="our token for the transmitter's poll and management APIs"
    )
    stream_id: str | None = None
    long_poll_seconds: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _one_key_source(self) -> TransmitterSettings:
        if (self.jwks_uri is None) == (self.jwks is None) and self.hmac_secret is None:
            raise ValueError(f"transmitter {self.issuer}: give exactly one of jwks_uri and jwks")
        if self.delivery == "poll" and not self.poll_endpoint:
            raise ValueError(f"transmitter {self.issuer}: poll delivery needs poll_endpoint")
        return self


class SsfSettings(BaseModel):
    """The Shared Signals receiver (``[ssf]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transmitters: list[TransmitterSettings] = Field(default_factory=list)
    jti_retention_seconds: float = Field(default=7 * 86400.0, gt=0)
    jwks_min_refresh_seconds: float = Field(default=60.0, ge=0)


class HecToken(BaseModel):
    """A Splunk HEC token (``[[ingest.hec_tokens]]``): the tenant its events belong to and,
    optionally, the format of its records (else by sourcetype, else detected)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr
    tenant: str = Field(min_length=1)
    format: str | None = None


class IngestSettings(BaseModel):
    """Log formats and forwarder endpoints (``[ingest]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_tenant: str | None = Field(
        default=None, description="tenant for records that name none (else they are rejected)"
    )
    mappings: list[dict[str, Any]] = Field(
        default_factory=list, description="declarative formats (FieldMapping configs)"
    )
    hec_tokens: list[HecToken] = Field(default_factory=list)
    sourcetypes: dict[str, str] = Field(
        default_factory=lambda: {
            "okta:im2": "okta",
            "okta:system_log": "okta",
            "auth0": "auth0",
            "auth0:logs": "auth0",
            "keycloak": "keycloak",
            "keycloak:event": "keycloak",
            "oidc-provider": "oidc-provider",
            "tokenwarden": "native",
        },
        description="HEC sourcetype -> format",
    )
    rejected_keep: int = Field(
        default=1000, ge=0, description="rejected records kept for /v1/rejected"
    )


class PolicySettings(BaseModel):
    """The policy (``[policy]``): ``rules`` replace the defaults; ``modes`` switch rules
    by name between ``enforce`` and ``dry_run``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[dict[str, Any]] | None = None
    modes: dict[str, str] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Everything the service needs to start; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="TOKENWARDEN_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    database_url: str = "sqlite:///./tokenwarden.db"
    hash_key: SecretStr | None = Field(
        default=None, description="HMAC key for token ids; generated and stored if unset"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_batch_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=10_000, ge=1)
    queue_batches: int = Field(default=64, ge=1, description="bounded pipeline queue")
    retry_after_seconds: int = Field(default=1, ge=1)
    sweep_interval_seconds: float = Field(default=3600.0, gt=0)
    usage_state_flush_seconds: float = Field(
        default=5.0,
        ge=0,
        description="save the usage baselines at most this often (0: with every batch); "
        "refresh-token and risk state is saved with every batch regardless",
    )
    policy_refresh_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how often a pipeline (embedded or worker) looks for a policy another "
        "process stored with PUT /v1/policy",
    )
    enabled_detectors: list[str] | None = None
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    ssf: SsfSettings = Field(default_factory=SsfSettings)
    revocation: RevocationSettings = Field(default_factory=RevocationSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment overrides the file, which arrives as init kwargs
        return (env_settings, init_settings)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config`` (TOML) and the environment; ``overrides`` win over both."""
    data: dict[str, Any] = {}
    if config is not None:
        try:
            data = tomllib.loads(config.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {config} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config} is not valid TOML: {exc}") from None
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    # explicit overrides (command-line flags) win over the file and the environment
    return settings.model_copy(update=overrides) if overrides else settings


__all__ = [
    "ConfigError",
    "HecToken",
    "IngestSettings",
    "PolicySettings",
    "Settings",
    "SsfSettings",
    "TransmitterSettings",
    "load_settings",
]
