"""The labelled traffic simulator: deterministic, well-formed, everything labelled."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ingest import NORMALIZERS, AuditEvent, TokenHasher
from tokenwarden.cli import app
from tokenwarden.formats import normalize
from tokenwarden.simulate import ATTACK_KINDS, BENIGN_KINDS, SimConfig, simulate

HASHER = TokenHasher(b"k" * 32)


@pytest.fixture(scope="module")
def small() -> tuple[list[dict[str, object]], dict[str, object]]:
    return simulate(SimConfig(minutes=60, tenants=1, agents=4, seed=5))


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    a = simulate(SimConfig(minutes=40, tenants=1, agents=3, seed=9))
    b = simulate(SimConfig(minutes=40, tenants=1, agents=3, seed=9))
    c = simulate(SimConfig(minutes=40, tenants=1, agents=3, seed=10))
    assert orjson.dumps(a) == orjson.dumps(b)
    assert orjson.dumps(a[0]) != orjson.dumps(c[0])


def _normalized(events: list[dict[str, object]]) -> list[AuditEvent]:
    """The events as the replay sees them: native ones validated, the IdP-shaped ones
    (Okta, Auth0) through their normalizers; none refused."""
    parsed = normalize(events, formats=NORMALIZERS, fmt=None, hasher=HASHER, tenant=None)
    assert parsed.rejected == [] and parsed.ignored == []
    return parsed.events


def test_every_event_is_a_valid_audit_event_in_time_order(small: tuple) -> None:  # type: ignore[type-arg]
    events, _ = small
    parsed = _normalized(events)
    assert len(parsed) == len(events)
    assert [p.time for p in parsed] == sorted(p.time for p in parsed)
    assert len({p.id for p in parsed}) == len(parsed)
    actions = Counter(p.action for p in parsed)
    assert actions["token.used"] > actions["token.refreshed"] > actions["token.issued"] > 0


def test_every_attack_and_benign_scenario_is_labelled_with_real_events(small: tuple) -> None:  # type: ignore[type-arg]
    events, labels = small
    ids = {e.id for e in _normalized(events)}
    attacks = labels["attacks"]
    assert {a["kind"] for a in attacks} == set(ATTACK_KINDS)
    for a in attacks:
        assert a["event_ids"] and set(a["event_ids"]) <= ids
        assert a["entity"].startswith(a["principal"] + "/")
        assert a["start"] <= a["end"]
    assert {b["kind"] for b in labels["benign"]} == set(BENIGN_KINDS)
    assert labels["benign_events"] + labels["attack_events"] == labels["events"] == len(events)


def test_attacks_can_be_chosen_and_unknown_ones_are_refused() -> None:
    _, labels = simulate(SimConfig(minutes=40, tenants=1, agents=4, attacks=("parallel_use",)))
    assert {a["kind"] for a in labels["attacks"]} == {"parallel_use"}
    with pytest.raises(ValueError, match="unknown attack"):
        SimConfig(attacks=("nope",))


def test_the_command_writes_events_and_labels(tmp_path: Path) -> None:
    out, labels = tmp_path / "traffic.ndjson", tmp_path / "labels.json"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--minutes",
            "40",
            "--tenants",
            "1",
            "--agents",
            "3",
            "--seed",
            "2",
            "--attacks",
            "refresh_replay,exfil_spike",
            "--out",
            str(out),
            "--labels",
            str(labels),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    data = orjson.loads(labels.read_bytes())
    assert len(lines) == data["events"] and "events" in result.output
    assert {a["kind"] for a in data["attacks"]} == {"refresh_replay", "exfil_spike"}
