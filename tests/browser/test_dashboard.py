"""The on-call dashboard in a real browser against the real service: sign in, watch a
replayed refresh token become a detection and an order in the live feed, look at the
entity and the family, release a kill switch, acknowledge an alert, read the policy.

Playwright's ``expect`` waits (up to 15 s) for the page to show what is asserted; the
dashboard polls the API every two seconds, so nothing here reloads the page to see news.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import PageLog, Service
from tokenwarden.demo import story

if TYPE_CHECKING:  # imported by the fixtures, which skip without Playwright
    from playwright.sync_api import Page


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


pytestmark = pytest.mark.integration

ENTITY = "acme/jane@acme.example/crm-followup/https://api.crm.example"


def api(service: Service) -> httpx.Client:
    return httpx.Client(base_url=service.base_url, headers=service.headers(), timeout=30)


def sign_in(page: Page, credential: str) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key or bearer token").fill(credential)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-text")).to_be_visible()


def replay_of(family: str, now: datetime, **fields: Any) -> list[dict[str, Any]]:
    """Rotation rt-1 → rt-2, then rt-1 presented again from another network: reuse."""
    base = {
        "tenant": "acme",
        "action": "token.refreshed",
        "user": "jane@acme.example",
        "agent": "crm-followup",
        "client_id": "agent-crm",
        "source": {"ip": "203.0.113.5", "asn": 64500},
        **fields,
    }

    def at(seconds: float) -> str:
        return (now - timedelta(seconds=seconds)).isoformat()

    return [
        {
            **base,
            "time": at(600),
            "token": {
                "parent_id": "rt-0",
                "id": "rt-1",
                "family_id": family,
                "type": "refresh_token",
            },
        },
        {
            **base,
            "time": at(300),
            "token": {
                "parent_id": "rt-1",
                "id": "rt-2",
                "family_id": family,
                "type": "refresh_token",
            },
        },
        {
            **base,
            "time": at(0),
            "source": {"ip": "198.51.100.66", "asn": 64999},
            "token": {
                "parent_id": "rt-1",
                "id": "rt-x",
                "family_id": family,
                "type": "refresh_token",
            },
        },
    ]


def assert_clean(log: PageLog) -> None:
    """No script error, no native dialog (that would be injected script), and no console
    error — a Content-Security-Policy violation is reported there."""
    assert log.errors == []
    assert log.dialogs == []
    assert [m for m in log.console if m.startswith("error")] == []


def test_the_shell_is_served_with_a_strict_content_security_policy(service: Service) -> None:
    r = httpx.get(service.base_url + "/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<script type="module" src="/dashboard/app.js"></script>' in r.text


def test_on_call_signs_in_watches_the_feed_and_acts(
    page: Page, service: Service, page_log: PageLog
) -> None:
    # a credential the service does not know is refused, and nothing is stored
    sign_in_page = page
    sign_in_page.goto("/")
    page.get_by_label("API key or bearer token").fill("twk_0123456789abcdef_" + "A" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text("That credential was not accepted.")
    assert page.evaluate("sessionStorage.length") == 0
    page_log.console.clear()  # the refused whoami is a logged 401, on purpose

    # the first-start admin key: every tenant, admin
    page.get_by_label("API key or bearer token").fill(service.admin_key)
    page.get_by_role("button", name="Sign in").click()
    who = page.locator("#who-text")
    expect(who).to_contain_text("all tenants")
    expect(who).to_contain_text("admin")
    assert page.evaluate("sessionStorage.getItem('tokenwarden.credential')") == service.admin_key
    expect(page.get_by_role("heading", name="Live feed")).to_be_visible()
    expect(page.locator("table.detections")).to_contain_text("no detections yet")

    # events arrive while the feed is open: normal work, then the stolen token's replay
    normal, replay = story(datetime.now(UTC))
    with api(service) as http:
        assert (
            http.post("/v1/events", params={"wait": "true"}, json=normal).json()["detections"] == 0
        )
        assert http.post("/v1/events", params={"wait": "true"}, json=replay).json()["orders"] == 1
        entity = http.get(f"/v1/entities/{ENTITY}").json()

    detection = page.locator("table.detections tbody tr[data-detector='refresh_reuse']")
    expect(detection).to_have_count(1)
    expect(detection).to_contain_text("critical")
    expect(detection).to_contain_text("refresh token rt-2 of family fam-demo")
    order = page.locator("table.orders tbody tr[data-status='done']")
    expect(order).to_have_count(1)
    expect(order).to_contain_text("fam-demo")
    expect(order).to_contain_text("store: delivered")

    # the order: what it did, adapter by adapter, and its audit trail
    order.locator("a.order-link").click()
    expect(page.get_by_role("heading", name="Order")).to_be_visible()
    expect(page.locator("main")).to_contain_text("refresh token reuse")
    expect(page.locator("main")).to_contain_text("order.executed")
    page.go_back()

    # the family: the rotation chain, rt-2 marked as the reused token, the replay link
    detection.locator("a.family-link").click()
    expect(page.get_by_role("heading", name="Token family")).to_be_visible()
    reused = page.locator("svg.chain g.chain-token[data-reused='true']")
    expect(reused).to_have_count(1)
    expect(reused).to_have_attribute("data-token", "rt-2")
    expect(reused).to_contain_text("REUSED")
    expect(page.locator("svg.chain g.chain-token[data-token='rt-3']")).to_have_attribute(
        "data-reused", "false"
    )
    expect(page.locator("svg.chain path.replay")).to_have_attribute("data-to", "rt-x")
    expect(page.locator(".toolbar .badge")).to_have_text("revoked")

    # the entity: observed vs baseline plot, the anomaly marked, scopes and networks
    page.get_by_role("link", name="Entities").click()
    page.locator("table.entities").get_by_role("link", name=ENTITY).click()
    expect(page.locator(".entity-key")).to_have_text(ENTITY)
    plot = page.locator("svg.rate-plot")
    expect(plot.locator("[data-series='observed'] rect")).to_have_count(
        len(entity["rate"]["observed"])
    )
    expect(plot.locator("polyline[data-series='baseline']")).to_have_count(1)
    expect(plot.locator("[data-series='anomalies'] circle")).to_have_count(1)
    expect(page.locator("table.scopes tr[data-scope='leads:read']")).to_contain_text("9")
    expect(page.locator("table.networks tr[data-network='as64999']")).to_be_visible()
    anomalous = page.locator("table.timeline tr[data-anomalous='true']")
    expect(anomalous).to_have_count(1)
    expect(anomalous).to_contain_text("rt-2 → rt-x")
    expect(page.locator("svg.timeline-strip circle.anomalous")).to_have_count(1)

    # a kill switch thrown through the API is released in the dashboard, with a reason
    with api(service) as http:
        thrown = http.post(
            "/v1/kill-switches",
            json={"kind": "agent", "value": "crm-followup", "tenant": "acme", "reason": "theft?"},
        )
        assert thrown.status_code == 201, thrown.text
        [switch] = http.get("/v1/kill-switches").json()
    page.get_by_role("link", name="Kill switches").click()
    row = page.locator(f"table.switches tr[data-id='{switch['id']}']")
    expect(row).to_contain_text("crm-followup")
    row.get_by_role("button", name="Release…").click()
    dialog = page.locator("dialog#release-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Release").click()  # no reason yet: refused
    expect(dialog.get_by_role("alert")).to_have_text("Reason is required.")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason").fill("false positive: the owner rotated from a new office")
    dialog.get_by_role("button", name="Release").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("#switch-result")).to_contain_text("Released agent crm-followup")
    expect(row).to_have_count(0)
    with api(service) as http:
        assert http.get("/v1/kill-switches").json() == []
        [released] = http.get("/v1/kill-switches", params={"active": "false"}).json()
        assert released["id"] == switch["id"]
        assert released["released_at"] is not None
        audit = http.get("/v1/audit", params={"ref": switch["id"]}).json()
    assert any("the owner rotated from a new office" in str(a["data"]) for a in audit), audit

    # the alert of the family's revocation is acknowledged, with a note
    page.get_by_role("link", name="Alerts").click()
    alert_row = page.locator("table.alerts tr[data-acknowledged='false']", has_text="fam-demo")
    expect(alert_row).to_have_count(1)
    expect(alert_row).to_contain_text("refresh-reuse-revokes-family")
    alert_id = alert_row.get_attribute("data-id")
    alert_row.get_by_role("button", name="Acknowledge…").click()
    ack = page.locator("dialog#ack-dialog")
    ack.get_by_label("Note (optional)").fill("on it")
    ack.get_by_role("button", name="Acknowledge").click()
    acked = page.locator(f"table.alerts tr[data-id='{alert_id}']")
    expect(acked).to_have_attribute("data-acknowledged", "true")
    expect(acked.locator(".badge")).to_have_text("acknowledged")
    expect(acked).to_contain_text("on it")
    with api(service) as http:
        [stored] = [a for a in http.get("/v1/alerts").json() if a["id"] == alert_id]
    assert stored["acknowledged_at"] is not None
    assert stored["ack_note"] == "on it"

    # the policy: what each rule did; a rule put in dry run shows what it would have done
    page.get_by_role("link", name="Policy").click()
    rule = page.locator("table.rules tr[data-rule='refresh-reuse-revokes-family']")
    expect(rule.locator("td.did")).to_have_text("1 order, 1 family, 15 tokens")
    expect(rule.locator("td.would-have")).to_have_text("—")
    rule.get_by_role("button", name="Dry run…").click()
    page.locator("dialog#mode-dialog").get_by_role("button", name="Dry run").click()
    expect(rule).to_have_attribute("data-mode", "dry_run")
    with api(service) as http:
        r = http.post(
            "/v1/events",
            params={"wait": "true"},
            json=replay_of("fam-two", datetime.now(UTC), audience="https://api.other.example"),
        )
        assert r.json()["orders"] == 1
        assert http.get("/v1/kill-switches").json() == []
        [would] = [
            r["would_have"]
            for r in http.get("/v1/policy").json()["rules"]
            if r["name"] == "refresh-reuse-revokes-family"
        ]
    tokens = f"{would['tokens']} token{'' if would['tokens'] == 1 else 's'}"
    assert (would["orders"], would["families"]) == (1, 1)
    expect(rule.locator("td.would-have")).to_have_text(f"1 order, 1 family, {tokens}")
    expect(page.locator("#policy-summary")).to_have_text(
        f"Dry run: 1 order would have revoked 1 family ({tokens})."
    )
    with api(service) as http:  # back to enforcing for the other tests
        mode = {"mode": "enforce"}
        put = http.put("/v1/policy/rules/refresh-reuse-revokes-family/mode", json=mode)
        assert put.status_code == 200

    # signing out forgets the credential
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert_clean(page_log)


def test_server_data_is_shown_as_text_never_as_markup(
    page: Page, service: Service, page_log: PageLog
) -> None:
    payload = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    family = 'fam-<img src=x onerror="alert(3)">'  # no "/": the family route is one segment
    with api(service) as http:
        r = http.post(
            "/v1/events",
            params={"wait": "true"},
            json=replay_of(family, datetime.now(UTC), agent=f"agent {payload}"),
        )
        assert r.status_code == 202, r.text
        assert r.json()["detections"] == 1
    sign_in(page, service.admin_key)
    row = page.locator("table.detections tbody tr", has_text="<img src=x")
    expect(row).to_have_count(1)
    expect(row.locator("td.reason")).to_contain_text(f"of family {family} was presented")
    row.locator("a.family-link").click()
    expect(page.locator(".toolbar .mono")).to_have_text(family)
    expect(page.locator("dd", has_text=f"agent {payload}")).to_have_count(1)
    assert page.locator("img").count() == 0
    assert page.locator("main script").count() == 0
    assert_clean(page_log)


def test_a_viewer_sees_but_cannot_release_or_acknowledge(
    page: Page, service: Service, page_log: PageLog
) -> None:
    with api(service) as http:
        made = http.post("/v1/keys", json={"tenant": "acme", "scopes": ["admin"], "role": "viewer"})
        assert made.status_code == 201, made.text
        viewer_key = made.json()["key"]
        thrown = http.post(
            "/v1/kill-switches",
            json={"kind": "user", "value": "bob@acme.example", "tenant": "acme", "reason": "x"},
        )
        assert thrown.status_code == 201, thrown.text
        [switch] = [s for s in http.get("/v1/kill-switches").json() if s["kind"] == "user"]
    try:
        sign_in(page, viewer_key)
        expect(page.locator("#who-text")).to_contain_text("tenant acme")
        expect(page.locator("#who-text")).to_contain_text("viewer")
        page.get_by_role("link", name="Kill switches").click()
        button = page.locator(f"tr[data-id='{switch['id']}']").get_by_role("button")
        expect(button).to_be_disabled()
        expect(button).to_have_attribute("title", "needs the responder role")
        assert_clean(page_log)
    finally:
        with api(service) as http:
            released = http.post(
                f"/v1/kill-switches/{switch['id']}/release", json={"reason": "test over"}
            )
            assert released.status_code == 200, released.text
