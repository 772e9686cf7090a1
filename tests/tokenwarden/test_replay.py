"""``tokenwarden replay`` on a file of 100k events, through the CLI."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from bench.traffic import events
from tokenwarden.cli import app


def test_replay_100k_events_writes_detections_and_orders(tmp_path: Path) -> None:
    src = tmp_path / "audit.ndjson"
    with src.open("wb") as fh:
        for e in events(100_000, families=2000, replays=10):
            fh.write(orjson.dumps(e) + b"\n")
        fh.write(b"{broken\n")
        fh.write(orjson.dumps({"time": 0, "tenant": "x", "action": "bogus"}) + b"\n")
    det, orders = tmp_path / "det.ndjson", tmp_path / "orders.ndjson"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(src),
            "--detections",
            str(det),
            "--orders",
            str(orders),
            "--database",
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "100000 events" in result.output
    assert "2 rejected" in result.output
    detections = [orjson.loads(line) for line in det.read_bytes().splitlines()]
    assert len(detections) == 10
    for d in detections:
        assert {"detector", "entity", "score", "severity", "reason", "event_ids"} <= d.keys()
        assert d["detector"] == "refresh_reuse"
    written = [orjson.loads(line) for line in orders.read_bytes().splitlines()]
    assert len(written) == 10
    for o in written:
        assert {"target", "action", "reason", "detection_ids"} <= o.keys()
        assert o["action"] == "revoke" and o["target"]["kind"] == "family"
    assert {o["target"]["value"] for o in written} == {d["family_id"] for d in detections}


def test_replay_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "nope.ndjson")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
