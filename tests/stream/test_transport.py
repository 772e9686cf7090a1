"""The fetch wait: faust's aiokafka driver hardcodes 1500 ms; our workers use the setting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from tests.stream.broker import Tansu
from tokenwarden.stream.settings import KafkaSettings
from tokenwarden.stream.transport import FetchWaitTransport, set_fetch_wait
from tokenwarden.stream.worker import build_app


@pytest.mark.integration
def test_the_workers_consumer_fetches_with_the_configured_wait(
    tansu: Tansu, tmp_path: Path
) -> None:
    async def run() -> tuple[int, int]:
        app = build_app(KafkaSettings(broker=tansu.url, fetch_wait_ms=7), datadir=str(tmp_path))
        assert isinstance(app.transport, FetchWaitTransport)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        before_start = consumer._fetch_max_wait_ms
        await consumer.start()  # aiokafka hands the value to its fetcher here
        try:
            return before_start, consumer._fetcher._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == (7, 7)


def test_set_fetch_wait_refuses_a_consumer_without_the_attribute() -> None:
    class Other:
        pass

    with pytest.raises(RuntimeError, match="cannot set the fetch wait"):
        set_fetch_wait(Other(), 5)


def test_set_fetch_wait_on_an_unstarted_aiokafka_consumer() -> None:
    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        set_fetch_wait(consumer, 3)
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(run()) == 3
