"""The Kafka side of the command line: ``serve --broker`` and ``worker`` refuse a bad or
missing broker with a clear error before anything starts."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from detectors import FEATURES, ModelArtifact, ModelDetector
from tests.stream.broker import Tansu
from tokenwarden.api.health import _kafka_ok
from tokenwarden.app import create_app
from tokenwarden.cli import _with_broker, app
from tokenwarden.db import make_engine, upgrade
from tokenwarden.learned_models import model_detector, save_to_store
from tokenwarden.pipeline import utcnow
from tokenwarden.settings import Settings

runner = CliRunner()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("flag", ["localhost:9092", "kafka://", "http://kafka:9092"])
def test_serve_refuses_a_broker_that_is_not_a_kafka_url(flag: str) -> None:
    result = runner.invoke(app, ["serve", "--broker", flag])
    assert result.exit_code == 2
    assert "--broker" in result.output and "kafka://HOST:PORT" in result.output


def test_the_broker_flag_wins_over_the_config_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'tw.db'}")
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_validate({"broker": "kafka://a:1", "partitions": 4})}
    )
    updated = _with_broker(settings, "kafka://b:2;c:3")
    assert updated.kafka.broker == "kafka://b:2;c:3"
    assert updated.kafka.bootstrap_servers() == ["b:2", "c:3"]
    assert updated.kafka.partitions == 4  # the rest of [kafka] is kept


def test_worker_without_a_broker_says_how_to_give_one(tmp_path: Path) -> None:
    config = tmp_path / "tw.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "tw.db"}"\n')
    result = runner.invoke(app, ["worker", "--config", str(config)])
    assert result.exit_code == 2
    assert "no broker" in result.output


def test_readyz_checks_the_kafka_broker(tansu: Tansu, tmp_path: Path) -> None:
    """``/readyz`` of an API that publishes to Kafka: ready while a bootstrap broker
    accepts connections, not when none does. Such an API detects nothing (the workers
    do): it leaves the stored learned models in the store."""
    base = Settings(database_url=f"sqlite:///{tmp_path / 'tw.db'}")
    db = make_engine(base.database_url)
    upgrade(db)
    fitted = ModelDetector().fit(np.zeros((300, len(FEATURES))), trained_at=0.0)
    assert save_to_store(db, ModelArtifact(tenants={"acme": fitted}), now=utcnow()) == ["acme"]
    db.dispose()
    up = _with_broker(base, f"kafka://127.0.0.1:{free_port()};{tansu.url.removeprefix('kafka://')}")
    with TestClient(create_app(up, on_admin_key=lambda _: None)) as client:
        r = client.get("/readyz")
        assert (r.status_code, r.json()["checks"]) == (200, {"database": "ok", "kafka": "ok"})
        model = model_detector(client.app.state.services.stages.engine)  # type: ignore[attr-defined]
        assert model is not None and model.models == {}
    # an API whose broker went away after it started is not ready
    assert asyncio.run(_kafka_ok([f"127.0.0.1:{free_port()}"])) is False
    assert asyncio.run(_kafka_ok([f"127.0.0.1:{free_port()}", tansu.url[8:]])) is True
