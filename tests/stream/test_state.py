"""PartitionState: the detectors' mapping over a faust Table's store, and what it writes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors import Engine, build_detectors, upgrade_state
from detectors.records import to_json
from ingest import TokenHasher, validate_events
from tokenwarden.stream.changelog import serialize
from tokenwarden.stream.keys import Partitioner, family_key, principal_key, wants_family_stage
from tokenwarden.stream.state import WATERMARK, PartitionState, drop_partitions
from tokenwarden.stream.worker import split_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.traffic import T0, events

HASHER = TokenHasher(b"state-test-key-state-test-key-32")


@pytest.mark.parametrize("buckets", [0, 4])
def test_reads_fall_through_writes_stay_pending_until_applied(buckets: int) -> None:
    store: dict[str, Any] = {}
    s = PartitionState(store, 2, buckets=buckets)
    s["a"] = {"n": 1}
    s["b"] = [1, 2]
    assert store == {}  # nothing written before apply
    assert s["a"] == {"n": 1} and len(s) == 2
    changed, deleted = s.take_changes()
    records = s.apply(changed, deleted, offset=41)
    assert records[-1] == (f"2|{WATERMARK}", b"41")
    assert s.applied == 41
    # the store keeps each value as the bytes its changelog record carries
    assert all(store[k] == v for k, v in records)
    fresh = PartitionState(store, 2, buckets=buckets)
    assert fresh["a"] == {"n": 1} and fresh["b"] == [1, 2]
    # the detectors read with get() and `in`: those fall through to the store as well
    assert fresh.get("a") == {"n": 1} and "b" in fresh and fresh.get("zz", 5) == 5
    assert sorted(fresh) == ["a", "b"]
    del fresh["a"]
    assert "a" not in fresh and fresh.get("a") is None and sorted(fresh) == ["b"]
    with pytest.raises(KeyError):
        fresh["a"]
    changed, deleted = fresh.take_changes()
    assert deleted == {"a"}
    records = fresh.apply(changed, deleted, offset=42)
    keys = [k for k, _ in records]
    if buckets:
        assert keys[0].startswith("2|#")
    else:
        assert ("2|a", None) in records  # a tombstone
    assert "a" not in PartitionState(store, 2, buckets=buckets)
    assert PartitionState(store, 3, buckets=buckets).get("b") is None  # other partition


def test_iteration_and_sweeps_see_only_their_partition() -> None:
    store: dict[str, Any] = {"1|x": b"1", "1|y": b"2", f"1|{WATERMARK}": b"9", "2|x": b"3"}
    s = PartitionState(store, 1)
    assert sorted(s) == ["x", "y"]
    assert s.applied == 9
    assert drop_partitions(store, {2}) == 3
    assert store == {"2|x": b"3"}


def test_checkpoint_and_rollback() -> None:
    s = PartitionState({"0|k": b"1", "0|r": b"[1]"}, 0)
    s["a"] = 1
    cp = s.checkpoint()
    s["b"] = 2
    del s["k"]
    s["r"].append(2)  # in place, as the detectors do: the store's bytes stay as they were
    s.rollback(cp)
    assert s.get("b") is None and s["k"] == 1 and s["a"] == 1 and s["r"] == [1]


@pytest.mark.parametrize("buckets", [0, 4])
def test_changelog_records_are_fausts_json(buckets: int) -> None:
    """What ``apply`` returns and ``serialize`` sends is what faust's json codec writes (its
    recovery of a Table with ``raw`` values puts these very bytes back in the store)."""
    from faust.serializers import codecs

    store: dict[str, Any] = {"0|gone": b"1"} if not buckets else {}
    s = PartitionState(store, 0, buckets=buckets)
    s["vol/x"] = {"n": 1.5, 2: "two", "t": T0}
    if not buckets:
        del s["gone"]
    records = serialize(s.apply(*s.take_changes(), offset=7))
    for key, value in records:
        table_key = orjson.loads(key)
        assert key == codecs.dumps("json", table_key)
        if value is not None:
            assert store[table_key] == value
    by_key = {orjson.loads(k): v for k, v in records}
    assert by_key["0|@applied"] == codecs.dumps("json", 7)
    if buckets:
        (bucket,) = (k for k in by_key if k.startswith("0|#"))
        assert by_key[bucket] == codecs.dumps("json", {"vol/x": {"n": 1.5, 2: "two", "t": T0}})
    else:
        assert by_key["0|vol/x"] == codecs.dumps("json", {"n": 1.5, 2: "two", "t": T0})
        assert by_key["0|gone"] is None and "0|gone" not in store


@pytest.mark.parametrize("buckets", [0, 16])
def test_partitioned_state_gives_the_embedded_detections(buckets: int) -> None:
    """The whole traffic through one engine and one dict (embedded) finds what the two
    stages find with their state split by partition, batch by batch, through the Table
    store and back (each batch on a store rebuilt from the changelog records so far, as
    after a recovery)."""
    raw = list(events(6000, families=150, replays=8))
    parsed = validate_events(raw, hasher=HASHER).events
    engine = Engine(build_detectors())
    embedded = {d.id for d in engine.process(parsed, {}, T0)}

    principal_engine, family_engine = split_engine(engine)
    changelogs: dict[str, list[tuple[str, bytes | None]]] = {"audit": [], "family": []}
    found: set[str] = set()
    for stage, eng, key, pick in (
        ("audit", principal_engine, principal_key, lambda e: True),
        ("family", family_engine, family_key, wants_family_stage),
    ):
        partitioner = Partitioner(4)
        chosen = [e for e in parsed if pick(e)]
        for start in range(0, len(chosen), 500):
            for partition, (_, batch) in partitioner.group(
                chosen[start : start + 500], key
            ).items():
                store: dict[str, Any] = {}
                for k, v in changelogs[stage]:  # faust's recovery, as for a raw Table
                    if v is None:
                        store.pop(k, None)
                    else:
                        store[k] = v
                state = PartitionState(store, partition, buckets=buckets)
                found |= {d.id for d in eng.process(batch, state, T0)}
                changed, deleted = state.take_changes()
                changelogs[stage] += state.apply(changed, deleted, offset=start)
    assert found == embedded
    assert any(d.startswith("det-") for d in found)


@pytest.mark.parametrize("buckets", [0, 4])
def test_a_partition_saved_in_the_earlier_layout_is_moved_with_a_batch(buckets: int) -> None:
    """The worker moves ``vol/``, ``sd/``, ``dst/``, ``sdg/``, ``dfam/`` keys into the
    per-entity and per-family records with a partition's first batch (``upgrade_state``);
    the moves are ordinary changes of the partition, applied and sent to the changelog."""
    table: dict[str, Any] = {}
    old = PartitionState(table, 3, buckets=buckets)
    old["vol/acme/jane/crm/-"] = [1.0, 1.0, 1.0, 1.0, 0.0, 1, 1.0]
    old["dfam/acme/fam-1"] = ["as1", 1.0, "e1", 1.0]
    old["eng/acme/jane/crm/-"] = [0.5, 1.0, None, 0, 0]
    old.apply(*old.take_changes(), offset=7)
    state = PartitionState(table, 3, buckets=buckets)
    assert upgrade_state(state) == 2
    records = state.apply(*state.take_changes(), offset=8)
    assert records
    fresh = PartitionState(table, 3, buckets=buckets)
    assert {k: to_json(v) for k, v in fresh.items()} == {
        "u/acme/jane/crm/-": [[1.0, 1.0, 1.0, 1.0, 0.0, 1, 1.0], None, None],
        "fam/acme/fam-1": [None, ["as1", 1.0, "e1", 1.0]],
        "eng/acme/jane/crm/-": [0.5, 1.0, None, 0, 0],
    }
    assert upgrade_state(fresh) == 0


@pytest.mark.parametrize("buckets", [0, 4])
def test_a_take_rolled_back_and_run_again_counts_once(buckets: int) -> None:
    """The worker re-runs a take whose outputs could not be sent (``_guarded``): it rolls
    the partition's state back and detects again. The detectors change records in place,
    so what they read from the Table's store must be an object of their own (decoded from
    the stored bytes) — else the first attempt's counts stay in the store and the retry
    adds them again."""
    raw = list(events(3000, families=60, replays=0))
    parsed = validate_events(raw, hasher=HASHER).events
    first, second = parsed[:1500], parsed[1500:]

    def run(retry: bool) -> dict[str, Any]:
        store: dict[str, Any] = {}
        engine = Engine(build_detectors())
        state = PartitionState(store, 0, buckets=buckets)
        engine.process(first, state, T0)
        state.apply(*state.take_changes(), offset=0)
        if retry:
            checkpoint = state.checkpoint()
            engine.process(second, state, T0)
            state.rollback(checkpoint)  # the take failed after detection
        engine.process(second, state, T0)
        state.apply(*state.take_changes(), offset=1)
        return {k: orjson.loads(v) for k, v in store.items()}

    assert run(retry=True) == run(retry=False)
