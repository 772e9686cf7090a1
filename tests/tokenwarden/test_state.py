from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from detectors.records import to_json
from ingest import AuditEvent
from revocation import store
from tokenwarden.pipeline import USAGE_STATE_PREFIXES, Stages
from tokenwarden.services import Services, build_services
from tokenwarden.settings import Settings
from tokenwarden.state import TrackedState


def test_tracked_state_reports_changes_once() -> None:
    s = TrackedState({"a": 1})
    s["b"] = 2
    s["a"] = 3
    del s["b"]
    s["c"] = 4
    changed, deleted = s.take_changes()
    assert changed == {"a": 3, "c": 4}
    assert deleted == {"b"}
    assert s.take_changes() == ({}, set())
    assert dict(s) == {"a": 3, "c": 4}


def test_held_prefixes_stay_pending_until_taken_without_hold() -> None:
    s = TrackedState()
    s["vol/a"] = 1
    s["rr/f"] = 2
    s["vol/b"] = 3
    del s["vol/b"]
    changed, deleted = s.take_changes(hold=("vol/",))
    assert (changed, deleted) == ({"rr/f": 2}, set())
    assert s.pending == 2
    s["vol/a"] = 5
    assert s.take_changes() == ({"vol/a": 5}, {"vol/b"})
    assert s.pending == 0


def _events(start: datetime, family: str) -> list[AuditEvent]:
    base = {"tenant": "acme", "user": "jane@acme.example", "agent": "crm", "client_id": "c1"}
    return [
        AuditEvent.model_validate(
            {
                **base,
                "id": f"{family}-r",
                "time": start.isoformat(),
                "action": "token.refreshed",
                "token": {"id": f"{family}-2", "parent_id": f"{family}-1", "family_id": family},
            }
        ),
        AuditEvent.model_validate(
            {
                **base,
                "id": f"{family}-u",
                "time": (start + timedelta(seconds=1)).isoformat(),
                "action": "token.used",
                "audience": "https://crm.example",
                "scopes": ["leads:read"],
                "source": {"ip": "203.0.113.5", "asn": 64500},
                "token": {"id": f"{family}-a", "family_id": family, "type": "access_token"},
            }
        ),
    ]


def _saved(services: Services) -> dict[str, Any]:
    with services.db.connect() as conn:
        return dict(store.load_state(conn))


def _stale(stages: Stages, saved: dict[str, Any]) -> set[str]:
    """Keys whose value in memory differs from the saved one (or is not saved)."""
    return {
        k
        for k, v in stages.state.items()
        if k not in saved or orjson.loads(orjson.dumps(v, default=to_json)) != saved[k]
    }


def test_usage_baselines_are_saved_on_their_interval_refresh_state_with_every_batch(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 's.db'}", usage_state_flush_seconds=60.0
    )
    services = build_services(settings)
    stages = services.stages
    clock = [100.0]  # the process clock the flush interval runs on
    stages.monotonic = lambda: clock[0]
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    try:
        stages.process(_events(t0, "fam-1"), now=t0)  # the first batch saves everything
        assert _stale(stages, _saved(services)) == set()
        clock[0] += 10
        stages.process(_events(t0 + timedelta(seconds=10), "fam-2"), now=t0 + timedelta(seconds=10))
        stale = _stale(stages, _saved(services))
        assert stale  # the second batch's usage baselines wait for their interval
        assert all(k.startswith(USAGE_STATE_PREFIXES) for k in stale)  # refresh state did not
        later = t0 + timedelta(seconds=75)
        clock[0] += 65
        stages.process(_events(later, "fam-3"), now=later)
        assert _stale(stages, _saved(services)) == set()
        after = t0 + timedelta(seconds=80)
        clock[0] += 5
        stages.process(_events(after, "fam-4"), now=after)
        assert stages.state.pending > 0
        assert stages.flush_state(now=after) > 0
        assert _stale(stages, _saved(services)) == set()  # a restart reloads all of it
    finally:
        services.db.dispose()


def test_saved_state_is_loaded_unless_it_lives_elsewhere(tmp_path: Path) -> None:
    """``serve`` and ``replay`` start from the saved detector state; the Kafka runner
    (worker, ``serve --broker``) keeps its state in faust Tables and loads none."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}")
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    first = build_services(settings)
    first.stages.process(_events(t0, "fam-1"), now=t0)
    first.stages.flush_state(now=t0)
    saved = _saved(first)
    first.db.dispose()
    assert saved
    again = build_services(settings)
    elsewhere = build_services(settings, load_state=False)
    try:
        assert set(dict(again.stages.state.items())) == set(saved)
        assert not dict(elsewhere.stages.state.items())
    finally:
        again.db.dispose()
        elsewhere.db.dispose()


def test_state_saved_in_the_earlier_layout_is_moved_at_start(tmp_path: Path) -> None:
    """A snapshot from before the per-entity records (``vol/``, ``sd/``, ``dst/``,
    ``sdg/``, ``dfam/``) is moved into ``u/`` and ``fam/`` records when the service
    starts, and saved so: the baselines survive the upgrade."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}")
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    first = build_services(settings)
    entity = "acme/jane/crm/https://api.example"
    legacy = {
        f"vol/{entity}": [t0.timestamp(), 1.0, 1.0, 1.0, 0.0, 1, t0.timestamp()],
        f"dst/{entity}": {"n": {"as64500": 1}, "c": 1, "t": t0.timestamp()},
        "sdg/acme/fam-1": [["leads:read"], t0.timestamp()],
        "rr/acme/fam-1": {"c": {}, "cur": None, "g": 0, "n": 0, "seen": t0.timestamp()},
    }
    with first.db.begin() as conn:
        store.save_state(conn, changed=legacy, deleted=(), now=t0)
    first.db.dispose()
    again = build_services(settings)
    try:
        state = dict(again.stages.state.items())
        assert state == _saved(again)  # moved and saved at once
        assert state[f"u/{entity}"] == [legacy[f"vol/{entity}"], None, legacy[f"dst/{entity}"]]
        assert state["fam/acme/fam-1"] == [legacy["sdg/acme/fam-1"], None]
        assert state["rr/acme/fam-1"] == legacy["rr/acme/fam-1"]
        assert len(state) == 3
    finally:
        again.db.dispose()
