"""The AuditEvent: one normalized fact about a token's life (DESIGN.md, wire schema).

Every input — our own JSON, a vendor log line, a verified SET — becomes an ``AuditEvent``
and every detector sees only these. The model is frozen; unknown top-level fields are kept
under ``attributes`` as evidence; raw token values are replaced by their keyed hash while
the event is validated (pass ``context={"hasher": TokenHasher}`` to ``model_validate``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ingest.secrets import TokenHasher, looks_like_raw_token

#: Actions an event may carry; ``ssf.<event-name>`` is open-ended (one per SSF event type).
ACTIONS: frozenset[str] = frozenset(
    {
        "token.issued",
        "token.refreshed",
        "token.used",
        "token.revoked",
        "token.introspected",
        "auth.succeeded",
        "auth.failed",
        "session.started",
        "session.ended",
        "session.context_changed",
        "risk.changed",
    }
)
_SSF_ACTION = re.compile(r"ssf\.[a-z][a-z0-9_]{0,63}")
_MAX_ID = 256
_MAX_STR = 2048


def is_known_action(action: str) -> bool:
    """True for a known action or a well-formed ``ssf.<event-name>``."""
    return action in ACTIONS or _SSF_ACTION.fullmatch(action) is not None


def _hasher(info: ValidationInfo) -> TokenHasher | None:
    ctx = info.context
    if isinstance(ctx, dict):
        h = ctx.get("hasher")
        if isinstance(h, TokenHasher):
            return h
    return None


_INT64 = (-(2**63), 2**63 - 1)


def scrub_tokens(value: Any, hasher: TokenHasher | None) -> Any:
    """Replace raw-token-looking strings anywhere in ``value`` by their keyed hash (and
    integers beyond 64 bits, which no JSON consumer downstream can hold, by strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, str):
        if looks_like_raw_token(value):
            if hasher is None:
                raise ValueError("a raw token value arrived and no hash key is configured")
            return hasher.hash(value)
        return value
    if isinstance(value, dict):
        return {str(k): scrub_tokens(v, hasher) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_tokens(v, hasher) for v in value]
    return value


class TokenRef(BaseModel):
    """The token an event is about: identifiers only, never the token itself.

    For ``token.refreshed``, ``parent_id`` is the refresh token presented and ``id`` the one
    issued (RFC 6749 §6 with rotation, RFC 9700 §4.14.2). A raw value given as ``value``
    (or found in ``id``/``parent_id``/``family_id``) is replaced by its keyed hash.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = Field(default=None, max_length=_MAX_ID)
    parent_id: str | None = Field(default=None, max_length=_MAX_ID)
    family_id: str | None = Field(default=None, max_length=_MAX_ID)
    type: Literal["access_token", "refresh_token", "id_token", "authorization_code"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _hash_raw(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        hasher = _hasher(info)
        raw = data.pop("value", None)
        if raw is not None:
            if not isinstance(raw, str):
                raise ValueError("token.value must be a string")
            if hasher is None:
                raise ValueError("token.value given and no hash key is configured")
            if data.get("id") is None:
                data["id"] = hasher.hash(raw)
        for key in ("id", "parent_id", "family_id"):
            v = data.get(key)
            if isinstance(v, str) and looks_like_raw_token(v):
                if hasher is None:
                    raise ValueError(f"token.{key} holds a raw token and no hash key is set")
                data[key] = hasher.hash(v)
        return data


class Source(BaseModel):
    """Where a call came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ip: str | None = Field(default=None, max_length=64)
    asn: int | None = Field(default=None, ge=0, le=4_294_967_295)
    user_agent: str | None = Field(default=None, max_length=_MAX_STR)


class AuditEvent(BaseModel):
    """One normalized fact (DESIGN.md, "AuditEvent wire schema")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(max_length=_MAX_ID)
    time: datetime
    tenant: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=80)
    user: str | None = Field(default=None, max_length=512)
    agent: str | None = Field(default=None, max_length=512)
    client_id: str | None = Field(default=None, max_length=512)
    audience: str | None = Field(default=None, max_length=_MAX_STR)
    scopes: tuple[str, ...] = ()
    token: TokenRef | None = None
    source: Source | None = None
    destination: str | None = Field(default=None, max_length=_MAX_STR)
    outcome: Literal["success", "failure"] = "success"
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any, info: ValidationInfo) -> Any:
        """Keep unknown fields as attributes, scrub raw tokens, give a stable id."""
        if not isinstance(data, dict):
            raise ValueError(f"an event must be a JSON object, not {type(data).__name__}")
        hasher = _hasher(info)
        if data.keys() <= _FIELDS:
            out = dict(data)
            attrs = out.get("attributes")
        else:
            out = {k: v for k, v in data.items() if k in _FIELDS}
            attrs = out.get("attributes")
            extra = {k: v for k, v in data.items() if k not in _FIELDS}
            attrs = {**attrs, **extra} if isinstance(attrs, dict) else (attrs or extra)
            if attrs is extra and "attributes" in out and out["attributes"] is not None:
                attrs = out["attributes"]  # not an object: refused below
        if attrs:
            if not isinstance(attrs, dict):
                raise ValueError("attributes must be an object")
            out["attributes"] = scrub_tokens(attrs, hasher)
        elif attrs is not None and not isinstance(attrs, dict):
            raise ValueError("attributes must be an object")
        else:
            out["attributes"] = {}
        if out.get("id") is None:
            out["id"] = _stable_id(out, hasher)
        return out

    @field_validator("time", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> datetime:
        """RFC 3339 date-time, or seconds since the epoch; naive times are taken as UTC."""
        if isinstance(value, bool):
            raise ValueError("time must be an RFC 3339 string or epoch seconds")
        if isinstance(value, int | float):
            if not 0 <= value < 32_503_680_000:
                raise ValueError("epoch seconds out of range")
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"time {value[:40]!r} is not RFC 3339") from None
        else:
            raise ValueError("time must be an RFC 3339 string or epoch seconds")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if not is_known_action(value):
            raise ValueError(
                f"unknown action {value!r}; expected one of {sorted(ACTIONS)} or ssf.<event>"
            )
        return value

    @field_validator("scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: Any) -> Any:
        """Accept the OAuth ``scope`` string form too (RFC 6749 §3.3: space-delimited)."""
        if isinstance(value, str):
            return tuple(value.split())
        return value

    @property
    def family_id(self) -> str | None:
        return self.token.family_id if self.token else None

    def to_json(self) -> bytes:
        """The event in its wire form."""
        return orjson.dumps(self.model_dump(mode="json", exclude_defaults=True))


_FIELDS = frozenset(AuditEvent.model_fields)


def _stable_id(data: dict[str, Any], hasher: TokenHasher | None) -> str:
    """A content-derived id, so a redelivered event without an id dedupes to the same id."""
    safe = scrub_tokens({k: v for k, v in data.items() if k != "attributes"}, hasher)
    try:
        canonical = orjson.dumps(safe, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # a value orjson cannot hold (validation refuses it next)
        canonical = repr(sorted(safe.items(), key=lambda kv: kv[0])).encode()
    digest = hashlib.sha256(canonical)
    return "evt-" + digest.hexdigest()[:24]
