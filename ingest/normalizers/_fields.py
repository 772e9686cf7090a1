"""Small, defensive readers shared by the normalizers.

Vendor records are untrusted JSON: every reader here returns None (or raises
``NormalizeError`` naming the field) instead of trusting a type, and ``bounded`` makes the
copy of the original record that is kept as evidence small, JSON-serialisable and free of
credentials.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ingest.normalizers.base import NormalizeError
from ingest.secrets import REDACTED, redact_text

#: Keys whose values are credentials wherever they appear (OAuth request parameters,
#: RFC 6749 §4.1.3, §6, RFC 7009 §2.1, RFC 8693 §2.1; HTTP auth headers). Their values are
#: replaced before anything is kept — a short opaque refresh token does not *look* like a
#: token, so the key is the only reliable sign.
SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "code_verifier",
        "device_code",
        "client_secret",
        "client_assertion",
        "assertion",
        "subject_token",
        "actor_token",
        "token",
        "password",
        "secret",
        "authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api_key",
        "apikey",
        "private_key",
    }
)

MAX_DEPTH = 6
MAX_ITEMS = 64
MAX_STRING = 1024
_INT64 = (-(2**63), 2**64 - 1)
_SCOPE_SPLIT = re.compile(r"[\s,]+")
#: A cheap superset of what ``ingest.secrets.redact_text`` replaces (a JWT header, an auth
#: scheme, a known secret prefix): strings without any of these skip the three substitutions.
MAYBE_SECRET = re.compile(r"eyJ|(?i:bearer|basic|dpop)\s|gh[porsu]_|xox[abpr]-|ya29\.|1//|sk-")


def bounded(value: Any, *, depth: int = 0, secret_keys: frozenset[str] = SECRET_KEYS) -> Any:
    """A bounded, JSON-serialisable, credential-free copy of ``value`` (kept as evidence).

    Depth ≤ 6, ≤ 64 items per object or array, strings ≤ 1024 characters; values under
    ``secret_keys`` are replaced by ``[REDACTED]`` (string values only, so a ``token``
    object of identifiers stays; ``code`` is not in the default set because vendors use it
    for error codes — a format that logs authorization codes passes its own set); JWTs,
    ``Bearer …`` credentials and known secret-token prefixes inside strings are redacted
    (``ingest.secrets``); integers beyond 64 bits become strings and non-finite floats null.
    """
    if isinstance(value, str):
        value = value[:MAX_STRING]
        return redact_text(value) if MAYBE_SECRET.search(value) else value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return "[TRUNCATED]"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["__truncated__"] = len(value) - MAX_ITEMS
                break
            key = str(k)[:128]
            if isinstance(v, str) and v and key.lower() in secret_keys:
                out[key] = REDACTED
            else:
                out[key] = bounded(v, depth=depth + 1, secret_keys=secret_keys)
        return out
    if isinstance(value, list | tuple):
        items = [bounded(v, depth=depth + 1, secret_keys=secret_keys) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append("[TRUNCATED]")
        return items
    return str(value)[:MAX_STRING]


def obj(value: Any) -> Mapping[str, Any] | None:
    """``value`` when it is a JSON object."""
    return value if isinstance(value, Mapping) else None


def dig(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]…``, or None as soon as a step is missing or not an object."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def text(value: Any) -> str | None:
    """A non-blank string, else None (``"null"``/``"unknown"`` placeholders count as blank)."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped and stripped.lower() not in {"null", "unknown", "none"}:
            return stripped
    return None


def ident(value: Any) -> str | None:
    """An identifier: a non-blank string, or an integer rendered as a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text(value)


def integer(value: Any) -> int | None:
    """A non-negative integer (also from a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2**63 else None
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def scope_list(value: Any) -> list[str] | None:
    """Scopes from a space- or comma-delimited string (RFC 6749 §3.3; Okta logs them as
    ``"openid, profile"``) or an array of strings."""
    if isinstance(value, str):
        scopes = [s for s in _SCOPE_SPLIT.split(value) if s]
        return scopes or None
    if isinstance(value, list):
        scopes = [s.strip() for s in value if isinstance(s, str) and s.strip()]
        return scopes or None
    return None


def required_text(record: Mapping[str, Any], key: str) -> str:
    """``record[key]`` as a non-blank string, or a ``NormalizeError`` naming the field."""
    value = record.get(key)
    if value is None:
        raise NormalizeError(f"{key}: required field is missing", code="missing_field")
    result = text(value) if isinstance(value, str) else None
    if result is None:
        raise NormalizeError(f"{key}: expected a non-empty string", code="bad_field")
    return result


def epoch_ms(value: Any, key: str) -> float:
    """Milliseconds since the epoch (Keycloak's ``time``) as epoch seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NormalizeError(f"{key}: expected epoch milliseconds", code="bad_field")
    if not math.isfinite(value) or not 0 <= value < 32_503_680_000_000:
        raise NormalizeError(f"{key}: epoch milliseconds out of range", code="bad_field")
    return value / 1000.0


def pick_tenant(own: str | None, configured: str | None, *, prefer_record: bool, where: str) -> str:
    """The event's tenant: the record's own (``own``) or the configured one, in the order
    the format documents; refused when neither is known."""
    first, second = (own, configured) if prefer_record else (configured, own)
    tenant = first or second
    if not tenant:
        raise NormalizeError(
            f"no tenant: the record names none ({where}) and no tenant is configured",
            code="no_tenant",
        )
    return tenant


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without None values (and without empty nested objects)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict) and key != "attributes":
            value = {k: v for k, v in value.items() if v is not None}
            if not value:
                continue
        out[key] = value
    return out
