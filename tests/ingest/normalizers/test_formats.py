"""Each format's documented example events, mapped field by field (issue 6, item 1)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingest.normalizers import NORMALIZERS, normalize_batch, okta
from tests.ingest.normalizers.helpers import (
    HASHER,
    assert_matches,
    case_id,
    cases,
    check_event,
    load,
    normalize_one,
    secrets_in,
)

CASES = list(cases())
ORIGINAL = {
    "okta": "okta",
    "auth0": "auth0",
    "keycloak": "keycloak",
    "oidc-provider": "oidc_provider",
    "gateway": "gateway",
}


@pytest.mark.parametrize("item", CASES, ids=case_id)
def test_documented_example_is_mapped_field_by_field(item: tuple[str, dict[str, Any]]) -> None:
    fmt, case = item
    event = normalize_one(fmt, case["record"], case.get("tenant"))
    if case["expect"] is None:
        assert event is None, "a recognised record we do not watch is ignored, not mapped"
        return
    assert event is not None
    check_event(event, case["expect"])
    for key, value in case.get("expect_attributes", {}).items():
        assert key in event.attributes, key
        assert_matches(event.attributes[key], value, f"attributes.{key}")


@pytest.mark.parametrize("item", CASES, ids=case_id)
def test_the_original_record_is_kept_bounded(item: tuple[str, dict[str, Any]]) -> None:
    fmt, case = item
    event = normalize_one(fmt, case["record"], case.get("tenant"))
    if event is None or fmt not in ORIGINAL:
        return
    kept = event.attributes[ORIGINAL[fmt]]
    assert isinstance(kept, dict)
    assert len(orjson.dumps(kept)) < 64 * 1024


@pytest.mark.parametrize("item", CASES, ids=case_id)
def test_no_raw_token_from_a_fixture_reaches_an_event(item: tuple[str, dict[str, Any]]) -> None:
    fmt, case = item
    event = normalize_one(fmt, case["record"], case.get("tenant"))
    if event is None:
        return
    wire = event.to_json().decode()
    for secret in secrets_in(case["record"]):
        assert secret not in wire


def test_the_fixtures_do_carry_raw_tokens() -> None:
    """The test above is not vacuous: some fixtures hold credentials on purpose."""
    found = [s for _, case in CASES for s in secrets_in(case["record"])]
    assert len(found) >= 5


def test_keycloak_admin_representation_is_not_kept() -> None:
    case = next(c for c in load("keycloak")["cases"] if "consent" in c["name"])
    event = normalize_one("keycloak", case["record"], None)
    assert event is not None
    assert b"do-not-keep-this" not in event.to_json()


# -- tenant rules ------------------------------------------------------------------------


def _first(stem: str) -> dict[str, Any]:
    record: dict[str, Any] = load(stem)["cases"][0]["record"]
    return record


@pytest.mark.parametrize(
    ("fmt", "stem", "strip"),
    [
        ("okta", "okta", ("org",)),
        ("auth0", "auth0", ("data", "tenant_name")),
        ("keycloak", "keycloak", ("realmId", "realmName")),
        ("oidc-provider", "oidc_provider", ("tenant",)),
        ("native", "native", ("tenant",)),
    ],
)
def test_no_tenant_anywhere_is_rejected_with_a_reason(
    fmt: str, stem: str, strip: tuple[str, ...]
) -> None:
    record = dict(_first(stem))
    if fmt == "auth0":
        record = {k: v for k, v in record["data"].items() if k != "tenant_name"}
    else:
        for key in strip:
            record.pop(key, None)
    batch = normalize_batch([record], normalizer=NORMALIZERS[fmt], hasher=HASHER, tenant=None)
    assert batch.events == []
    assert len(batch.rejected) == 1
    assert batch.rejected[0].index == 0
    assert batch.rejected[0].reason.startswith(f"{fmt}: no tenant")


def test_okta_configured_tenant_wins_over_the_org() -> None:
    # the org names the IdP, not our tenant: a source configured for a tenant keeps it
    record = _first("okta")
    assert okta.OktaNormalizer().normalize(record, tenant="other")["tenant"] == "other"  # type: ignore[index]
    assert okta.OktaNormalizer().normalize(record, tenant=None)["tenant"] == "acme.okta.com"  # type: ignore[index]


def test_keycloak_configured_tenant_wins_over_the_realm() -> None:
    record = _first("keycloak")
    mapped = NORMALIZERS["keycloak"].normalize(record, tenant="acme-prod")
    assert mapped is not None and mapped["tenant"] == "acme-prod"
    mapped = NORMALIZERS["keycloak"].normalize(record, tenant=None)
    assert mapped is not None and mapped["tenant"] == "acme"


# -- format specifics --------------------------------------------------------------------


def test_okta_context_events_map_to_context_actions() -> None:
    risk = next(c for c in load("okta")["cases"] if "risk" in c["name"])["record"]
    normalizer = okta.OktaNormalizer()
    mapped = normalizer.normalize(risk, tenant="acme")
    assert mapped is not None
    assert mapped["action"] == "risk.changed"
    assert mapped["user"] == "jane@acme.example"
    assert mapped["attributes"]["risk"].startswith("{previousLevel=LOW, level=HIGH")


def test_auth0_flat_and_log_stream_shapes_map_alike() -> None:
    wrapped = _first("auth0")
    flat = wrapped["data"]
    a = NORMALIZERS["auth0"].normalize(wrapped, tenant=None)
    b = NORMALIZERS["auth0"].normalize(flat, tenant=None)
    assert a is not None and b is not None
    a.pop("attributes")
    b.pop("attributes")
    assert a == b


def test_auth0_agent_id_may_come_from_details() -> None:
    record = dict(_first("auth0")["data"])
    record.pop("agent_id")
    record["details"] = {**record["details"], "agent_id": "agt_fromdetails"}
    mapped = NORMALIZERS["auth0"].normalize(record, tenant=None)
    assert mapped is not None and mapped["agent"] == "agt_fromdetails"
    record["details"].pop("agent_id")
    mapped = NORMALIZERS["auth0"].normalize(record, tenant=None)
    assert mapped is not None and "agent" not in mapped


def test_keycloak_time_is_epoch_milliseconds() -> None:
    record = {**_first("keycloak"), "time": "2026-11-23T08:00:00Z"}
    batch = normalize_batch(
        [record], normalizer=NORMALIZERS["keycloak"], hasher=HASHER, tenant=None
    )
    assert batch.rejected[0].reason == "keycloak: time: expected epoch milliseconds"
