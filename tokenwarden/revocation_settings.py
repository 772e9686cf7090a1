"""Settings of the revocation executor (``[revocation]``): adapters, delivery, alerts.

```toml
[[revocation.adapters]]
type = "redis"                      # an entry point of the tokenwarden.adapters group
url = "redis://127.0.0.1:6379/0"    # the rest of the table is the adapter's own settings

[[revocation.adapters]]
type = "oauth_revocation"
name = "okta"                       # instance name (default: the type); unique
tenants = ["acme"]                  # only these tenants' orders (default: all)
revocation_endpoint = "https://idp.acme.example/oauth2/v1/revoke"
client_id = "tokenwarden"
auth_method = "private_key_jwt"
private_key_file = "/etc/tokenwarden/idp-key.pem"

[revocation.delivery]
backoff_max_seconds = 300

[revocation.alerts]
cooldown_seconds = 300
[[revocation.alerts.sinks]]
name = "oncall"
url = "https://hooks.slack.com/services/…"
format = "slack"
```
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class AdapterSettings(BaseModel):
    """One enabled adapter (``[[revocation.adapters]]``); keys other than ``type``,
    ``name`` and ``tenants`` are the adapter's own settings."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = Field(min_length=1)
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    tenants: list[str] | None = None

    @property
    def instance(self) -> str:
        return self.name or self.type

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DeliverySettings(BaseModel):
    """How the dispatcher delivers (``[revocation.delivery]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backoff_base_seconds: float = Field(default=0.5, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    timeout_seconds: float = Field(default=20.0, gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    batch: int = Field(default=100, ge=1)
    concurrency: int = Field(default=8, ge=1)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30.0, gt=0)
    store_grace_seconds: float = Field(default=2.0, ge=0)
    max_families: int = Field(default=1000, ge=1)
    max_tokens: int = Field(default=10_000, ge=1)
    record_delay_seconds: float = Field(
        default=0.05,
        ge=0,
        description="delivery outcomes ride on the pipeline's next commit, or are written "
        "after this long (0: each on its own commit)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> DeliverySettings:
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_base_seconds")
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError("lease_seconds must exceed timeout_seconds (a lease outlives a try)")
        return self


class AlertSinkSettings(BaseModel):
    """One alert destination (``[[revocation.alerts.sinks]]``); see
    ``revocation.alerts.AlertSinkConfig`` (this module stays import-light for the CLI)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(pattern=r"^https?://")
    format: Literal["json", "slack"] = "json"
    secret: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


class AlertSettings(BaseModel):
    """On-call alerts (``[revocation.alerts]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cooldown_seconds: float = Field(default=300.0, gt=0)
    max_per_cooldown: int = Field(default=20, ge=1)
    sinks: list[AlertSinkSettings] = Field(default_factory=list)


class RevocationSettings(BaseModel):
    """``[revocation]``: the adapters besides the token store, delivery, alerts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    adapters: list[AdapterSettings] = Field(default_factory=list)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @model_validator(mode="after")
    def _unique(self) -> RevocationSettings:
        names = [a.instance for a in self.adapters] + [s.name for s in self.alerts.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"adapter and alert sink names must be unique; repeated: {dupes}")
        if "store" in names:
            raise ValueError("the store adapter is always enabled; do not configure it")
        return self


__all__ = [
    "AdapterSettings",
    "AlertSettings",
    "AlertSinkSettings",
    "DeliverySettings",
    "RevocationSettings",
]
