"""The audit trail is hash-chained: an edited, deleted or cut-off row is found and named."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from revocation import Action, TargetKind, store
from revocation.store.audit import GENESIS, append_audit_many, audit_row, canonical, verify_chain
from revocation.tables import audit_head, audit_log
from revocation.txn import SQLITE_BEGIN_OPTION, writing
from tests.revocation.helpers import at, chain, order, rows
from tokenwarden import db as tw_db
from tokenwarden.db import alembic_config, upgrade

NOW = at(1000)


def _trail(engine: sa.Engine) -> None:
    """A realistic trail: tokens, a revoke, a kill switch and its release."""
    with engine.begin() as conn:
        store.record_tokens(conn, events=chain("fam-1", 3), now=at(500))
    store.execute_orders(engine, orders=[order(TargetKind.FAMILY, "fam-1")], now=NOW)
    ks_order = order(TargetKind.USER, "jane@acme.example", action=Action.KILL_SWITCH)
    store.execute_orders(engine, orders=[ks_order], now=NOW)
    with engine.begin() as conn:
        store.release_kill_switch(
            conn,
            kill_switch_id=ks_order.kill_switch_thrown,
            now=at(2000),
            actor="oncall@acme",
            reason="false positive",
        )


def verify(engine: sa.Engine) -> store.ChainReport:
    with engine.connect() as conn:
        return verify_chain(conn)


def _drop_guards(engine: sa.Engine) -> None:
    """What an attacker with database access does first: remove the append-only triggers."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("DROP TRIGGER audit_log_append_only ON audit_log"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            conn.execute(sa.text("DROP TRIGGER audit_log_no_delete"))


def test_a_trail_verifies_and_each_row_links_to_the_one_before(engine: sa.Engine) -> None:
    _trail(engine)
    report = verify(engine)
    trail = rows(engine, sa.select(audit_log).order_by(audit_log.c.seq))
    assert report.ok, report
    assert report.rows == len(trail) >= 6
    assert [r.seq for r in trail] == list(range(1, len(trail) + 1))
    assert trail[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(trail))
    assert (report.head_seq, report.head_hash) == (trail[-1].seq, trail[-1].hash)
    kinds = {r.kind for r in trail}
    assert {"order.recorded", "order.executed", "kill_switch.thrown", "kill_switch.released"} <= (
        kinds
    )
    released = next(r for r in trail if r.kind == "kill_switch.released")
    assert (released.actor, released.data["reason"]) == ("oncall@acme", "false positive")


def test_updates_and_deletes_are_refused_by_the_database(engine: sa.Engine) -> None:
    _trail(engine)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == 2).values(actor="mallory"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq == 2))
    assert verify(engine).ok


def test_an_edited_row_is_named(engine: sa.Engine) -> None:
    _trail(engine)
    _drop_guards(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.update(audit_log)
            .where(audit_log.c.seq == 3)
            .values(data={"affected": {"families": 0, "tokens": 0}})
        )
    report = verify(engine)
    assert (report.ok, report.broken_seq, report.rows) == (False, 3, 2)
    assert report.problem is not None
    assert "row 3" in report.problem
    assert "edited" in report.problem


def test_an_edited_row_with_a_recomputed_hash_breaks_the_next_link(engine: sa.Engine) -> None:
    """Rewriting a row *and* its hash is caught by the next row's prev_hash."""
    _trail(engine)
    _drop_guards(engine)
    with engine.begin() as conn:
        row = conn.execute(sa.select(audit_log).where(audit_log.c.seq == 2)).one()
        from revocation.store.audit import chain_hash

        forged = chain_hash(
            row.prev_hash,
            canonical(seq=2, at=row.at, actor="mallory", kind=row.kind, ref=row.ref, data=row.data),
        )
        conn.execute(
            sa.update(audit_log).where(audit_log.c.seq == 2).values(actor="mallory", hash=forged)
        )
    report = verify(engine)
    assert (report.ok, report.broken_seq) == (False, 3)
    assert "does not follow row 2" in (report.problem or "")


def test_a_deleted_row_is_named_by_the_row_after_it(engine: sa.Engine) -> None:
    _trail(engine)
    _drop_guards(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq == 4))
    report = verify(engine)
    assert (report.ok, report.broken_seq) == (False, 5)
    assert "row 5 does not follow row 3" in (report.problem or "")


def test_a_deleted_first_row_is_found(engine: sa.Engine) -> None:
    _trail(engine)
    _drop_guards(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq == 1))
    report = verify(engine)
    assert (report.ok, report.broken_seq) == (False, 2)
    assert "the start of the trail" in (report.problem or "")


def test_rows_cut_off_the_end_are_found_through_the_head(engine: sa.Engine) -> None:
    _trail(engine)
    _drop_guards(engine)
    with engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(audit_log.c.seq))).scalar_one()
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq >= last - 1))
    report = verify(engine)
    assert (report.ok, report.broken_seq) == (False, last - 1)
    assert "removed from the end" in (report.problem or "")


def test_concurrent_appends_form_one_linear_chain(engine: sa.Engine) -> None:
    """Eight writers at once: the head lock serialises them; no fork, no gap."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(10):
                with writing(engine) as conn:
                    append_audit_many(
                        conn,
                        rows=[
                            audit_row(
                                at=NOW + timedelta(seconds=i),
                                actor=f"w{n}",
                                kind="test.append",
                                ref=f"{n}-{i}-{j}",
                                data={"n": n, "i": i, "score": 0.5},
                            )
                            for j in range(3)
                        ],
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    report = verify(engine)
    assert report.ok, report
    assert report.rows == report.head_seq == 8 * 10 * 3
    seqs = [r.seq for r in rows(engine, sa.select(audit_log.c.seq).order_by(audit_log.c.seq))]
    assert seqs == list(range(1, 241))


def test_the_migration_chains_rows_written_before_it(bare_engine: sa.Engine) -> None:
    upgrade(bare_engine, "0002")
    with bare_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (at, actor, kind, ref, data) VALUES "
                "(:at, 'policy', 'order.recorded', 'ord-1', :data)"
            ),
            [
                {
                    "at": NOW if conn.dialect.name != "sqlite" else NOW.replace(tzinfo=None),
                    "data": '{"n": 1, "score": 1.0}',
                },
                {
                    "at": NOW if conn.dialect.name != "sqlite" else NOW.replace(tzinfo=None),
                    "data": '{"n": 2}',
                },
            ],
        )
    upgrade(bare_engine)
    report = verify(bare_engine)
    assert (report.ok, report.rows, report.head_seq) == (True, 2, 2)
    # and appending continues the chain
    store.execute_orders(bare_engine, orders=[order(TargetKind.FAMILY, "fam-1")], now=NOW)
    assert verify(bare_engine).ok
    with bare_engine.connect() as conn:
        assert conn.execute(sa.select(audit_head.c.seq)).scalar_one() > 2


def test_downgrading_past_the_chain_removes_it(engine: sa.Engine) -> None:
    _trail(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    cols = {c["name"] for c in sa.inspect(engine).get_columns("audit_log")}
    assert "hash" not in cols
    assert "audit_head" not in sa.inspect(engine).get_table_names()


def test_canonical_content_ignores_how_a_backend_prints_numbers() -> None:
    a = canonical(seq=1, at=NOW, actor="x", kind="k", ref=None, data={"n": 1e20, "f": 2.0})
    b = canonical(seq=1, at=NOW, actor="x", kind="k", ref=None, data={"f": 2, "n": 10**20})
    assert a == b


def test_the_write_transaction_option_is_the_one_the_engine_reads() -> None:
    assert SQLITE_BEGIN_OPTION == tw_db.SQLITE_BEGIN_OPTION
