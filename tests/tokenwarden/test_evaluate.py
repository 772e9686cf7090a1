"""Detection quality on labelled traffic: the issue's targets, on a fixed seed, through the
same stages as ``tokenwarden replay``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from detectors import ModelArtifact
from revocation import store
from tokenwarden.cli import app
from tokenwarden.db import make_engine
from tokenwarden.evaluate import Evaluation, run_evaluation, score
from tokenwarden.services import build_services
from tokenwarden.settings import Settings
from tokenwarden.simulate import IMMEDIATE_KINDS, SimConfig, simulate, write


@pytest.fixture(scope="module")
def evaluation(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[dict[str, Any]], dict[str, Any], Evaluation]:
    tmp = tmp_path_factory.mktemp("eval")
    events, labels = simulate(SimConfig(minutes=150, tenants=2, agents=4, seed=11))
    write(events, labels, tmp / "traffic.ndjson", tmp / "labels.json")
    services = build_services(Settings(database_url=f"sqlite:///{tmp / 'eval.db'}"))
    try:
        result = run_evaluation(
            tmp / "traffic.ndjson", labels, stages=services.stages, hasher=services.hasher
        )
    finally:
        services.db.dispose()
    return events, labels, result


@pytest.fixture(scope="module")
def evaluated(
    evaluation: tuple[list[dict[str, Any]], dict[str, Any], Evaluation],
) -> dict[str, Any]:
    return evaluation[2].report


def test_replays_the_idp_reports_as_logged_by_okta_and_auth0(
    evaluation: tuple[list[dict[str, Any]], dict[str, Any], Evaluation],
) -> None:
    """The second refresh replay of each tenant is the IdP's own reuse report, in Okta's
    (tenant1) and Auth0's (tenant2) log shapes; the normalizers map them and refresh_reuse
    reports each on that very record."""
    events, labels, result = evaluation
    okta = [e for e in events if e.get("eventType") == "app.oauth2.as.token.detect_reuse"]
    auth0 = [e for e in events if e.get("type") == "ferrt"]
    assert len(okta) == 1 and len(auth0) == 1
    for event_id in (f"okta:{okta[0]['uuid']}", f"auth0:{auth0[0]['log_id']}"):
        (attack,) = [a for a in labels["attacks"] if event_id in a["event_ids"]]
        assert attack["kind"] == "refresh_replay" and attack["event_ids"][0] == event_id
        (found,) = [d for d in result.detections if d["event_ids"] == [event_id]]
        assert found["detector"] == "refresh_reuse" and found["severity"] == "critical"
        assert found["tenant"] == attack["tenant"]
        vendor = event_id.split(":")[0]
        assert f"{vendor} reported reuse of refresh token" in found["reason"]
    assert result.report["replay"]["rejected"] == 0


def test_refresh_reuse_and_parallel_use_are_caught_on_their_first_event(
    evaluated: dict[str, Any],
) -> None:
    for kind in IMMEDIATE_KINDS:
        s = evaluated["per_kind"][kind]
        assert s["detected"] == s["total"] > 0, kind
        assert s["events_to_detect_p95"] == 1, kind
    assert evaluated["late_immediate"] == []


def test_at_least_95_percent_of_the_other_attacks_are_caught(evaluated: dict[str, Any]) -> None:
    others = [s for k, s in evaluated["per_kind"].items() if k not in IMMEDIATE_KINDS]
    assert len(others) == 4
    caught = sum(s["detected"] for s in others)
    total = sum(s["total"] for s in others)
    assert caught / total >= 0.95, evaluated["missed"]


def test_at_most_one_false_positive_per_10k_benign_events(evaluated: dict[str, Any]) -> None:
    assert evaluated["benign_events"] > 10_000
    assert evaluated["fp_per_10k_benign"] <= 1.0, evaluated["false_positive_examples"]


def test_benign_scenarios_raise_nothing_by_themselves(evaluated: dict[str, Any]) -> None:
    assert evaluated["benign_scenario_detections"] == {}
    assert evaluated["targets"]["met"]


def test_each_detector_contributes(evaluated: dict[str, Any]) -> None:
    first = {k for k, v in evaluated["detectors"].items() if v["attacks_first_detected"]}
    assert {"refresh_reuse", "destination", "scope_drift", "volume", "burst"} <= first


def _labels(**attack: Any) -> dict[str, Any]:
    base = {
        "id": "atk-1",
        "kind": "exfil_spike",
        "tenant": "acme",
        "principal": "acme/jane/bot",
        "entity": "acme/jane/bot/api",
        "family_id": "fam-1",
        "start": "2026-11-23T08:00:00Z",
        "end": "2026-11-23T08:05:00Z",
        "event_ids": ["a1", "a2", "a3"],
    }
    return {
        "events": 10003,
        "attacks": [{**base, **attack}],
        "benign": [
            {
                "kind": "travel",
                "tenant": "acme",
                "principal": "acme/joe/*",
                "start": "2026-11-23T07:00:00Z",
                "event_ids": [],
            }
        ],
    }


def _det(detector: str, time: str, event_ids: list[str], user: str = "jane") -> dict[str, Any]:
    return {
        "detector": detector,
        "time": time,
        "event_ids": event_ids,
        "tenant": "acme",
        "user": user,
        "agent": "bot",
        "entity": f"acme/{user}/bot/api",
        "family_id": None,
        "reason": "r",
        "evidence": {"contributions": {detector: 0.8}},
    }


def test_scoring_counts_events_and_seconds_to_detect_and_false_positives() -> None:
    times = {"a1": 0.0, "a2": 10.0, "a3": 20.0}
    t0 = 1795420800.0
    times = {k: t0 + v for k, v in times.items()}
    detections = [
        _det("volume", "2026-11-23T08:00:10Z", ["a2"]),
        _det("destination", "2026-11-23T08:30:00Z", ["b9"], user="joe"),
    ]
    report = score(detections, _labels(), times)
    s = report["per_kind"]["exfil_spike"]
    assert s["detected"] == 1 and s["events_to_detect_median"] == 2
    assert s["seconds_to_detect_median"] == 10.0
    assert report["false_positives"] == 1 and report["fp_per_10k_benign"] == 1.0
    assert report["benign_scenario_detections"] == {"travel": 1}
    assert report["detectors"]["volume"]["attacks_first_detected"] == 1
    assert not report["targets"]["met"]


@pytest.fixture
def _logging_restored() -> Iterator[None]:
    """The commands configure process-wide logging (record factory, root handlers); put it
    back so later tests in this process see what they expect."""
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("_logging_restored")
def test_evaluate_and_train_commands(tmp_path: Path) -> None:
    out, labels = tmp_path / "t.ndjson", tmp_path / "l.json"
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "simulate",
            "--minutes",
            "70",
            "--tenants",
            "1",
            "--agents",
            "3",
            "--seed",
            "4",
            "--out",
            str(out),
            "--labels",
            str(labels),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", str(out), str(labels), "--json"])
    assert r.exit_code == 0, r.output
    report = orjson.loads(r.stdout)
    assert report["events"] == orjson.loads(labels.read_bytes())["events"]
    assert "per_kind" in report and "targets" in report
    r = runner.invoke(app, ["evaluate", str(out), str(labels)])
    assert "false positives:" in r.stdout and "targets:" in r.stdout
    config = tmp_path / "tw.toml"
    db_url = f"sqlite:///{tmp_path / 'tw.db'}"
    config.write_text(f'database_url = "{db_url}"\n[detectors.model]\nmin_train_rows = 500\n')
    model = tmp_path / "model.npz"
    r = runner.invoke(app, ["train", "--from", str(out), "--out", str(model), "-c", str(config)])
    assert r.exit_code == 0, r.output
    assert "tenant1: trained on" in r.output
    assert set(ModelArtifact.load(model).tenants) == {"tenant1"}
    assert not (tmp_path / "tw.db").exists(), "--out alone leaves the store alone"

    r = runner.invoke(app, ["train", "--from", str(out), "--store", "-c", str(config)])
    assert r.exit_code == 0, r.output
    assert "1 model(s) saved to the store" in r.output
    config.write_text(
        f'database_url = "{db_url}"\n[detectors.model]\nmin_train_rows = 500\nn_estimators = 9\n'
    )
    r = runner.invoke(app, ["train", "--from-store", "-c", str(config)])
    assert r.exit_code == 0, r.output
    assert "tenant1: trained on" in r.output and "1 model(s) saved" in r.output
    db = make_engine(db_url)
    with db.connect() as conn:
        stored, errors = store.load_models(conn)
    db.dispose()
    assert errors == {} and len(stored.tenants["tenant1"].forest.roots) == 9
    r = runner.invoke(app, ["train", "-c", str(config)])
    assert r.exit_code == 2 and "either --from FILE or --from-store" in r.output
