"""Detections, detector-state snapshots and the audit trail."""

from __future__ import annotations

import sqlalchemy as sa

from detectors.detection import Severity
from revocation import store
from tests.revocation.helpers import at, count_statements, detection


def test_save_detections_inserts_once_and_counts_the_new(engine: sa.Engine) -> None:
    a = detection(event_id="e1", seconds=10)
    b = detection(event_id="e2", seconds=20, family="fam-2")
    with engine.begin() as conn:
        assert store.save_detections(conn, detections=[a, b, a]) == 2
    with engine.begin() as conn:
        assert store.save_detections(conn, detections=[b, detection(event_id="e3")]) == 1
        assert store.save_detections(conn, detections=[]) == 0
    with engine.connect() as conn:
        assert len(store.list_detections(conn)) == 3


def test_list_detections_newest_first_filtered_and_round_tripped(engine: sa.Engine) -> None:
    old = detection(event_id="e1", seconds=10, severity=Severity.LOW)
    new = detection(event_id="e2", seconds=30)
    other = detection(event_id="e3", seconds=20, tenant="globex")
    with engine.begin() as conn:
        store.save_detections(conn, detections=[old, other, new])
    with engine.connect() as conn:
        assert store.list_detections(conn) == [new, other, old]
        assert store.list_detections(conn, tenant="acme") == [new, old]
        assert store.list_detections(conn, since=at(20)) == [new, other]
        assert store.list_detections(conn, limit=1) == [new]


def test_state_round_trips_with_overwrites_and_deletes(engine: sa.Engine) -> None:
    first = {
        "rr/acme/fam-1": {"c": {"t0": ["t1", 1.5, "agent-crm", "as64500", 1]}, "g": 1},
        "usage/acme/jane": [1, 2.25, None, "x"],
        "gone": 1,
        "odd": {"q": 'say "hi" \\ \u0001 ✓', "f": 0.1 + 0.2, "big": 2**53 + 1},
        "none": None,
    }
    with engine.begin() as conn:
        store.save_state(conn, changed=first, deleted=[], now=at(1))
    with engine.begin() as conn:
        store.save_state(
            conn,
            changed={"usage/acme/jane": {"n": 3}, "new": True},
            deleted={"gone", "never-existed"},
            now=at(2),
        )
    with engine.connect() as conn:
        assert store.load_state(conn) == {
            "rr/acme/fam-1": first["rr/acme/fam-1"],
            "usage/acme/jane": {"n": 3},
            "new": True,
            "odd": first["odd"],
            "none": None,
        }


def test_save_state_costs_the_same_statements_for_1_or_300_keys(engine: sa.Engine) -> None:
    with count_statements(engine) as one, engine.begin() as conn:
        store.save_state(conn, changed={"k": 1}, deleted=["d"], now=at(1))
    many = {f"k{i}": {"i": i} for i in range(300)}
    with count_statements(engine) as lots, engine.begin() as conn:
        store.save_state(conn, changed=many, deleted=[f"d{i}" for i in range(300)], now=at(2))
    assert len(one) == len(lots)
    if engine.dialect.name == "postgresql":  # the upsert: one execution, not one per key
        (upsert,) = [i for i, s in enumerate(lots.statements) if "INSERT" in s.upper()]
        assert not lots.many[upsert]
    with engine.connect() as conn:
        assert len(store.load_state(conn)) == 301


def test_audit_trail_is_appended_in_order(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        store.append_audit(
            conn, at=at(1), actor="admin", kind="policy.changed", ref=None, data={"a": 1}
        )
        store.append_audit(conn, at=at(2), actor="oncall", kind="note", ref="ord-1", data={})
    with engine.connect() as conn:
        trail = store.list_audit(conn)
        mine = store.list_audit(conn, ref="ord-1")
    assert [(a.actor, a.kind, a.at) for a in trail] == [
        ("oncall", "note", at(2)),
        ("admin", "policy.changed", at(1)),
    ]
    assert trail[0].seq > trail[1].seq
    assert [a.kind for a in mine] == ["note"]
