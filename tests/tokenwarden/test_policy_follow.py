"""The embedded pipeline looks for a stored policy before a batch (``follow_policy``); a
store that fails that look costs the batch nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.detector_faults import events
from tokenwarden import services as services_module
from tokenwarden.pipeline import EmbeddedPipeline
from tokenwarden.services import build_services, follow_policy_off_loop
from tokenwarden.settings import Settings


def test_a_failing_policy_look_keeps_the_policy_and_processes_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = build_services(Settings(database_url=f"sqlite:///{tmp_path / 'tw.db'}"))
    running = services.stages.policy
    calls: list[int] = []

    def store_down(conn: Any) -> None:
        calls.append(1)
        raise sa.exc.OperationalError("SELECT policy_config", {}, Exception("database is down"))

    monkeypatch.setattr(services_module, "get_policy_config", store_down)

    async def main() -> list[int]:
        pipeline = EmbeddedPipeline(
            services.stages,
            max_batches=8,
            follow_policy=lambda: follow_policy_off_loop(services),
            policy_refresh_seconds=0.0,
        )
        await pipeline.start()
        try:
            sizes = [
                len((await asyncio.wait_for(pipeline.submit(b), 30)).events)
                for b in (events(5), events(7))
            ]
        finally:
            await pipeline.stop()
        return sizes

    try:
        assert asyncio.run(main()) == [5, 7]
    finally:
        services.db.dispose()
    assert len(calls) == 2  # looked again before the next batch
    assert services.stages.policy is running
