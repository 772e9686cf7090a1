"""IdP-reported refresh-token reuse, end to end: vendor record -> AuditEvent -> detection.

``detectors.refresh_reuse`` treats ``attributes.reason == "refresh_token_reused"`` on an
``auth.failed`` or ``token.refreshed`` event as reuse the IdP itself detected; each format's
reuse record must come out exactly that way. And where a vendor logs rotations with token
ids, our own detector must see a replay the IdP let through.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detectors import Engine, RefreshReuseDetector, Severity
from ingest import AuditEvent
from tests.ingest.normalizers.helpers import case_id, cases, load, normalize_one

NOW = datetime(2026, 11, 24, tzinfo=UTC)
REUSE = [item for item in cases() if item[1].get("reuse")]
VENDOR = {
    "okta": "okta",
    "auth0": "auth0",
    "keycloak": "keycloak",
    "oidc-provider": "oidc-provider",
}


def run(events: list[AuditEvent]) -> list[Any]:
    return Engine([RefreshReuseDetector()]).process(events, {}, NOW)


def test_every_idp_with_reuse_detection_has_a_reuse_fixture() -> None:
    assert {fmt for fmt, _ in REUSE} == {"okta", "auth0", "keycloak", "oidc-provider"}


@pytest.mark.parametrize("item", REUSE, ids=case_id)
def test_idp_reported_reuse_is_a_refresh_reuse_detection(item: tuple[str, dict[str, Any]]) -> None:
    fmt, case = item
    event = normalize_one(fmt, case["record"], case.get("tenant"))
    assert event is not None
    assert event.action == "auth.failed"
    assert event.outcome == "failure"
    assert event.attributes["reason"] == "refresh_token_reused"
    assert event.attributes["vendor"] == VENDOR[fmt]

    found = run([event])
    assert len(found) == 1
    detection = found[0]
    assert detection.detector == "refresh_reuse"
    assert detection.severity is Severity.CRITICAL
    assert event.token is not None
    assert detection.family_id == event.token.family_id
    assert detection.evidence["reported_by"] == VENDOR[fmt]
    assert detection.evidence["presented_token"] == event.token.parent_id
    assert detection.event_ids == (event.id,)
    assert detection.tenant == event.tenant
    assert detection.client_id == event.client_id


def test_okta_grants_and_reuse_share_one_family() -> None:
    grant, reuse = (
        normalize_one("okta", c["record"], c.get("tenant"))
        for c in load("okta")["cases"]
        if c["name"].startswith(("refresh grant", "refresh token reuse detected by a custom"))
    )
    assert grant is not None and reuse is not None
    assert grant.family_id == reuse.family_id
    assert run([grant, reuse])[0].family_id == grant.family_id


def _keycloak(kind: str) -> dict[str, Any]:
    record: dict[str, Any] = next(
        c["record"] for c in load("keycloak")["cases"] if c["record"].get("type") == kind
    )
    return copy.deepcopy(record)


def test_keycloak_rotation_then_replay_is_caught_by_our_own_detector() -> None:
    """Keycloak without "Revoke Refresh Token" lets a replay through; the log still shows it."""
    first = _keycloak("REFRESH_TOKEN")
    replay = copy.deepcopy(first)
    replay["id"] = "5e6f7a8b-9c0d-4e1f-2a3b-4c5d6e7f8a9b"
    replay["time"] = first["time"] + 3_600_000
    replay["ipAddress"] = "192.0.2.77"
    replay["details"]["updated_refresh_token_id"] = "77777777-7777-4777-8777-777777777777"
    events = [normalize_one("keycloak", r, None) for r in (first, replay)]
    assert all(e is not None for e in events)
    found = run([e for e in events if e is not None])
    assert len(found) == 1
    assert found[0].evidence["presented_token"] == first["details"]["refresh_token_id"]
    assert found[0].family_id == "c3be023a-8e3d-4d84-a745-413ff3565f06/agent-crm"


def test_auth0_counters_name_a_chain_and_a_replayed_counter_is_reuse() -> None:
    base = load("auth0")["cases"][0]["record"]["data"]

    def sertft(counter: int, at: timedelta, ip: str) -> AuditEvent:
        record = copy.deepcopy(base)
        record["details"]["tokenCounter"] = counter
        record["log_id"] = f"9002026112308{counter:04d}{int(at.total_seconds()):08d}"
        record["date"] = (datetime(2026, 11, 23, 8, tzinfo=UTC) + at).isoformat()
        record["ip"] = ip
        event = normalize_one("auth0", record, None)
        assert event is not None
        return event

    chain = [sertft(n, timedelta(minutes=10 * n), "203.0.113.5") for n in range(1, 4)]
    assert run(chain) == []
    assert run([*chain, chain[1]]) == [], "a redelivered log line is a duplicate, not reuse"
    replay = sertft(2, timedelta(hours=2), "192.0.2.77")
    found = run([*chain, replay])
    assert len(found) == 1
    assert found[0].evidence["presented_token"] == "rtf_8Yq3mK2pXzL0/2"
    assert found[0].family_id == "rtf_8Yq3mK2pXzL0"
