"""Fixture loading and comparison shared by the normalizer tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ingest import AuditEvent, TokenHasher, looks_like_raw_token
from ingest.normalizers import (
    FieldMapping,
    Normalizer,
    build_registry,
    normalize_batch,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"
FILES = ("okta", "auth0", "keycloak", "oidc_provider", "native", "mapping")
HASHER = TokenHasher(b"normalizer-tests-key-0123456789ab")
SECRET_KEYS = {"refresh_token", "client_secret", "code", "code_verifier", "authorization"}


def load(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / f"{stem}.json").read_bytes())
    return data


GATEWAY = FieldMapping.from_config(load("mapping")["config"])
REGISTRY: Mapping[str, Normalizer] = build_registry([GATEWAY])


def cases() -> Iterator[tuple[str, dict[str, Any]]]:
    """(format name, case) for every case of every fixture file."""
    for stem in FILES:
        data = load(stem)
        for case in data["cases"]:
            yield data["format"], case


def case_id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}: {item[1]['name']}"


def normalize_one(fmt: str, record: Any, tenant: str | None) -> AuditEvent | None:
    """Normalize one record through ``normalize_batch``; None when it was ignored.

    Fails the test when the record was rejected.
    """
    batch = normalize_batch([record], normalizer=REGISTRY[fmt], hasher=HASHER, tenant=tenant)
    assert batch.rejected == [], batch.rejected
    assert batch.total == 1
    return batch.events[0] if batch.events else None


def wire_without_attributes(event: AuditEvent) -> dict[str, Any]:
    dumped: dict[str, Any] = event.model_dump(
        mode="json", exclude_defaults=True, exclude={"attributes"}
    )
    return dumped


def assert_matches(actual: Any, expected: Any, path: str = "") -> None:
    """Exact comparison, where an expected string ending in ``*`` is a prefix."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        assert set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key, value in expected.items():
            assert_matches(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, str) and expected.endswith("*"):
        assert isinstance(actual, str) and actual.startswith(expected[:-1]), f"{path}: {actual!r}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def check_event(event: AuditEvent, expect: dict[str, Any]) -> None:
    expect = dict(expect)
    when = datetime.fromisoformat(expect.pop("time"))
    assert event.time == when
    wire = wire_without_attributes(event)
    wire.pop("time")
    if "id" not in expect:
        assert wire.pop("id").startswith("evt-")
    assert_matches(wire, expect)


def secrets_in(value: Any, key: str = "") -> Iterator[str]:
    """Every string in a fixture that is a credential: raw-token-looking values and the
    values of credential-named keys."""
    if isinstance(value, str):
        masked = value.startswith("*")  # Auth0 logs authorization codes masked
        if looks_like_raw_token(value) or (key.lower() in SECRET_KEYS and not masked):
            yield value
        yield from (part for part in value.replace("?", "&").split("&") if _is_jwt_part(part))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from secrets_in(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from secrets_in(v, key)


def _is_jwt_part(part: str) -> bool:
    _, _, value = part.partition("=")
    return value.startswith("eyJ") and looks_like_raw_token(value)
