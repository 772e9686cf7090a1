"""Format detection picks a format only when exactly one matches (issue 6, item 2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ingest.normalizers import FieldMapping, build_registry, detect_format
from tests.ingest.normalizers.helpers import REGISTRY, case_id, cases, load


@pytest.mark.parametrize("item", list(cases()), ids=case_id)
def test_each_documented_example_is_detected_as_its_format(
    item: tuple[str, dict[str, Any]],
) -> None:
    fmt, case = item
    assert detect_format(case["record"], REGISTRY) == fmt


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"message": "GET /v1/leads 200"},
        {"type": "sertft"},  # no date: not enough to say Auth0
        {"eventType": "user.session.start"},  # no published: not enough to say Okta
        {"event": "not.an.oidc.provider.event", "ts": 1},
        {"type": "refresh_token", "time": 1795420800000, "realmId": "acme"},  # not a KC type
    ],
)
def test_unknown_shapes_are_not_guessed(record: dict[str, Any]) -> None:
    assert detect_format(record, REGISTRY) is None


@pytest.mark.parametrize("value", [None, "text", 42, [{"action": "token.used", "time": 1}]])
def test_non_objects_have_no_format(value: Any) -> None:
    assert detect_format(value, REGISTRY) is None


def test_a_record_shaped_like_two_formats_is_ambiguous() -> None:
    record = {
        "type": "REFRESH_TOKEN",
        "time": 1795420800000,
        "realmId": "acme",
        "date": "2026-11-23T08:00:00Z",
        "log_id": "900",
    }
    assert REGISTRY["keycloak"].matches(record)
    assert REGISTRY["auth0"].matches(record)
    assert detect_format(record, REGISTRY) is None


def test_a_mapping_whose_match_overlaps_a_builtin_makes_those_records_ambiguous() -> None:
    native = load("native")["cases"][0]["record"]
    greedy = FieldMapping.from_config(
        {
            "name": "greedy",
            "fields": {"time": "/time"},
            "constants": {"action": "token.used"},
            "match": {"/tenant": "acme"},
        }
    )
    registry = build_registry([greedy])
    assert detect_format(native, registry) is None
    assert detect_format({**native, "tenant": "other"}, registry) == "native"


class _Raises:
    name = "raises"

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        return None

    def matches(self, record: Mapping[str, Any]) -> bool:
        raise RuntimeError("bug")


def test_a_matcher_that_raises_counts_as_no_match() -> None:
    registry = build_registry([_Raises()])
    record = load("okta")["cases"][0]["record"]
    assert detect_format(record, registry) == "okta"
