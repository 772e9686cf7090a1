"""A detector that raises leaves the state as the batch found it (``TrackedState``'s undo
log), and the embedded runner loses only the event it raised on, not its neighbours."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from detectors.records import to_json
from ingest import AuditEvent
from revocation.tables import tokens
from tests.detector_faults import ERROR, events, volume_fails_on_bad
from tokenwarden.pipeline import EmbeddedPipeline
from tokenwarden.services import build_services
from tokenwarden.settings import Settings
from tokenwarden.state import TrackedState
from tokenwarden.stream.state import PartitionState


def test_undo_puts_back_what_was_changed_in_place_set_and_deleted() -> None:
    s = TrackedState({"rec": [1, {"n": 2}], "gone": {"x": 1}, "kept": 5})
    s["pending"] = [0]  # a change not yet taken stays pending across the undo
    before = copy.deepcopy(dict(s))
    s.start_undo()
    s.get("rec")[1]["n"] = 99  # in place, as the detectors do
    s["rec"][0] = 7
    s["new"] = {"y": 1}
    del s["gone"]
    s["pending"].append(1)
    s.undo()
    assert dict(s) == before
    assert s.take_changes() == ({"pending": [0]}, set())
    s.stop_undo()
    s.get("rec")[0] = 8  # no longer recorded
    s["rec"] = s["rec"]
    assert s["rec"][0] == 8


def test_undo_after_undo_undoes_only_what_came_since() -> None:
    s = TrackedState({"a": [0]})
    s.start_undo()
    s["a"].append(1)
    s.start_undo()  # what came before stands
    s["a"].append(2)
    s.undo()
    assert s["a"] == [0, 1]
    with pytest.raises(RuntimeError):
        TrackedState().undo()


def test_partition_state_undoes_by_checkpoint() -> None:
    store: dict[str, Any] = {"0|rec": b"[1,2]"}
    s = PartitionState(store, 0)
    s.start_undo()
    s["rec"].append(3)
    s["new"] = 1
    s.undo()
    assert s["rec"] == [1, 2] and "new" not in s and store == {"0|rec": b"[1,2]"}
    s.stop_undo()
    with pytest.raises(RuntimeError):
        s.undo()


def _run(db: Path, batches: Sequence[list[AuditEvent]]) -> tuple[dict[str, Any], Any, int]:
    """The batches through a fresh embedded runner: (its state, the last result, how many
    events failed)."""

    async def main() -> tuple[dict[str, Any], Any, int]:
        services = build_services(Settings(database_url=f"sqlite:///{db}"))
        pipeline = EmbeddedPipeline(services.stages, max_batches=8)
        await pipeline.start()
        try:
            for batch in batches:
                result = await pipeline.submit(batch)
        finally:
            await pipeline.stop()
        # the state as stored (a copy: JSON)
        state = orjson.loads(orjson.dumps(dict(services.stages.state), default=to_json))
        with services.db.connect() as conn:
            ids = set(conn.execute(sa.select(tokens.c.token_id)).scalars())
        services.db.dispose()
        return state, (result, ids), pipeline.failed_events

    return asyncio.run(main())


def test_a_detector_raising_on_one_event_costs_only_that_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm, batch = events(30), events(60, bad=40)[30:]
    clean = [e for e in batch if e.id != "bad"]
    # the reference: the same traffic with the bad event never sent
    expected, _, _ = _run(tmp_path / "ref.db", [warm, clean])

    volume_fails_on_bad(monkeypatch)
    state, (result, token_ids), failed = _run(tmp_path / "tw.db", [warm, batch])
    assert [(result.events[i].id, e) for i, e in result.failed] == [("bad", ERROR)]
    assert failed == 1
    # the other events were detected exactly once: the same state as without the bad one
    assert state == expected
    # and nothing was lost: every event's token facts are recorded, the bad one's too
    assert token_ids == {f"at-{i}" for i in range(60)}
