"""record_tokens and get_family: families and tokens learned from the audit stream."""

from __future__ import annotations

import sqlalchemy as sa

from ingest import AuditEvent
from revocation import store
from revocation.tables import families, tokens
from tests.revocation.helpers import (
    TENANT,
    at,
    chain,
    count_statements,
    issued,
    refreshed,
    rows,
    snapshot,
    token_event,
)


def record(engine: sa.Engine, events: list[AuditEvent], seconds: float = 1000.0) -> None:
    with engine.begin() as conn:
        store.record_tokens(conn, events=events, now=at(seconds))


def test_refresh_records_both_tokens_and_the_family(engine: sa.Engine) -> None:
    record(
        engine,
        [
            issued("t0", session="sess-9"),
            refreshed("t0", "t1", seconds=60),
            refreshed("t1", "t2", seconds=120),
        ],
    )
    toks = rows(engine, sa.select(tokens).order_by(tokens.c.token_id))
    assert [(t.token_id, t.family_id, t.parent_id) for t in toks] == [
        ("t0", "fam-1", None),
        ("t1", "fam-1", "t0"),
        ("t2", "fam-1", "t1"),
    ]
    assert all(t.revoked_at is None for t in toks)
    assert toks[0].issued_at == at(0)
    (fam,) = rows(engine, sa.select(families))
    assert (fam.tenant, fam.family_id, fam.user, fam.agent, fam.client_id, fam.session_id) == (
        TENANT,
        "fam-1",
        "jane@acme.example",
        "crm-followup",
        "agent-crm",
        "sess-9",
    )
    assert (fam.created_at, fam.last_seen_at, fam.revoked_at) == (at(0), at(120), None)


def test_a_refresh_whose_parent_was_never_seen_adds_the_parent(engine: sa.Engine) -> None:
    record(engine, [refreshed("p", "c")])
    got = {t.token_id: t for t in rows(engine, sa.select(tokens))}
    assert set(got) == {"p", "c"}
    assert got["p"].parent_id is None
    assert got["p"].type == "refresh_token"
    assert got["c"].parent_id == "p"


def test_record_tokens_is_idempotent(engine: sa.Engine) -> None:
    events = chain("fam-1", 4) + chain("fam-2", 2)
    record(engine, events)
    before = snapshot(engine, families, tokens)
    record(engine, events, seconds=2000.0)
    record(engine, list(reversed(events)), seconds=3000.0)
    assert snapshot(engine, families, tokens) == before
    assert len(before["tokens"]) == 6


def test_first_sighting_keeps_identity_and_later_sightings_widen_times(
    engine: sa.Engine,
) -> None:
    record(engine, [issued("t0", seconds=100, agent=None)])
    record(
        engine,
        [
            token_event("token.used", token_id="t0", seconds=500, user="mallory", agent="bot-2"),
            token_event("token.used", token_id="t0", seconds=50, user="eve", client_id="x"),
        ],
    )
    (fam,) = rows(engine, sa.select(families))
    assert fam.user == "jane@acme.example"  # first sighting wins
    assert fam.client_id == "agent-crm"
    assert fam.agent == "bot-2"  # unknown at first sighting, filled by the first that knew
    assert (fam.created_at, fam.last_seen_at) == (at(50), at(500))


def test_events_without_family_or_token_or_of_other_actions_are_ignored(
    engine: sa.Engine,
) -> None:
    record(
        engine,
        [
            issued("t-nofam", family=None, kind="access_token"),
            token_event("token.used", token_id=None),
            token_event("token.revoked", token_id="t-revoked-event"),
            token_event("auth.failed", token_id="t-failed"),
        ],
    )
    assert rows(engine, sa.select(tokens)) == []
    assert rows(engine, sa.select(families)) == []


def test_without_family_ids_a_rotation_chain_stays_in_the_family_of_its_root(
    engine: sa.Engine,
) -> None:
    # the refresh_reuse detector's rule: a refresh token never seen before starts a family
    # named after itself; its descendants, in this batch or a later one, join that family
    record(engine, [issued("r0", family=None), refreshed("r0", "r1", family=None, seconds=1)])
    record(engine, [refreshed("r1", "r2", family=None, seconds=2)])
    record(engine, [refreshed("x0", "x1", family=None, seconds=3)])
    got = {t.token_id: t.family_id for t in rows(engine, sa.select(tokens))}
    assert got == {"r0": "r0", "r1": "r0", "r2": "r0", "x0": "x0", "x1": "x0"}
    assert {f.family_id for f in rows(engine, sa.select(families))} == {"r0", "x0"}


def test_tenants_do_not_share_families_or_tokens(engine: sa.Engine) -> None:
    record(engine, [issued("t0", tenant="acme"), issued("t0", tenant="globex")])
    assert [
        (f.tenant, f.family_id) for f in rows(engine, sa.select(families).order_by("tenant"))
    ] == [
        ("acme", "fam-1"),
        ("globex", "fam-1"),
    ]
    assert len(rows(engine, sa.select(tokens))) == 2


def test_record_tokens_costs_the_same_statements_for_1_or_300_events(engine: sa.Engine) -> None:
    small = chain("fam-small", 1)
    big = [e for i in range(30) for e in chain(f"fam-{i}", 10)]
    with count_statements(engine) as one:
        record(engine, small)
    with count_statements(engine) as many:
        record(engine, big)
    assert len(rows(engine, sa.select(tokens))) == 301
    assert len(one) == len(many)
    inserts = [i for i, s in enumerate(many.statements) if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 2
    if engine.dialect.name == "postgresql":
        # the rows travel as arrays in one execution each, not one execution per row
        assert not any(many.many[i] for i in inserts)
        assert all("json_to_recordset" in many.statements[i] for i in inserts)


def test_identifiers_keep_every_character_and_times_keep_microseconds(engine: sa.Engine) -> None:
    """Quotes, backslashes, control characters and non-ASCII text reach the store as they
    were (on PostgreSQL the rows travel as one JSON document)."""
    odd = 'Zoë "the" \\ bot\t\n\u2028 ✓'
    event = token_event(
        "token.refreshed",
        token_id=f"child {odd}",
        parent=f"parent {odd}",
        family=f"fam {odd}",
        user=f"user {odd}",
        agent=f"agent {odd}",
        seconds=0.123456,
    )
    record(engine, [event])
    (fam,) = rows(engine, sa.select(families))
    assert (fam.family_id, fam.user, fam.agent) == (f"fam {odd}", f"user {odd}", f"agent {odd}")
    assert fam.created_at == at(0.123456) and fam.created_at.microsecond == 123456
    got = {t.token_id: t for t in rows(engine, sa.select(tokens))}
    assert set(got) == {f"child {odd}", f"parent {odd}"}
    assert got[f"child {odd}"].parent_id == f"parent {odd}"
    assert got[f"child {odd}"].issued_at == at(0.123456)


def test_get_family_lists_tokens_in_issue_order(engine: sa.Engine) -> None:
    record(
        engine,
        [refreshed("t1", "t2", seconds=120), issued("t0"), refreshed("t0", "t1", seconds=60)],
    )
    with engine.connect() as conn:
        fam = store.get_family(conn, tenant=TENANT, family_id="fam-1")
        missing = store.get_family(conn, tenant="globex", family_id="fam-1")
        any_tenant = store.get_family(conn, tenant=None, family_id="fam-1")
    assert fam is not None
    assert missing is None
    assert any_tenant == fam
    assert [t.token_id for t in fam.tokens] == ["t0", "t1", "t2"]
    assert fam.tokens[1].parent_id == "t0"
    assert fam.user == "jane@acme.example"
    assert fam.revoked_at is None
    assert fam.model_dump(mode="json")["tokens"][0]["issued_at"] == "2026-11-23T08:00:00Z"


def test_a_later_batch_fills_what_an_earlier_one_did_not_know(engine: sa.Engine) -> None:
    record(engine, [refreshed("t1", "t2", seconds=120)])
    record(engine, [refreshed("t0", "t1", seconds=60)])
    got = {t.token_id: t for t in rows(engine, sa.select(tokens))}
    assert got["t1"].parent_id == "t0"
    assert got["t1"].issued_at == at(60)
    assert got["t2"].issued_at == at(120)
