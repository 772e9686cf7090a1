"""docker-compose.yml (no Docker engine here): the topology the README describes, with the
settings our code reads and a health check on every service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from tokenwarden.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_topology_and_settings() -> None:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert set(services) == {"kafka", "postgres", "redis", "api", "worker"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert all("healthcheck" in s for s in services.values())
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"][:2] == ["tokenwarden", "worker"]
    api = services["api"]["command"]
    assert api[:2] == ["tokenwarden", "serve"] and "--broker" in api
    # the environment the API and workers get loads as our settings
    env = {k: str(v) for k, v in services["worker"]["environment"].items()}
    env["TOKENWARDEN_HASH_KEY"] = "k" * 32
    with mock.patch.dict(os.environ, env):
        settings = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.kafka.broker == "kafka://kafka:9092"
    assert settings.kafka.bootstrap_servers() == ["kafka:9092"]
    assert settings.kafka.partitions == 8
    assert settings.revocation.adapters[0].type == "redis"


def test_the_image_build_leaves_local_state_out() -> None:
    """``COPY . /app`` must not carry a developer's virtualenv, database (with its
    generated hash key and API key hashes) or git history into the image."""
    ignored = set((COMPOSE.parent / ".dockerignore").read_text().split())
    assert {".git", ".venv", "*.db", "*.db-*"} <= ignored
