"""Background RFC 8936 polling for transmitters configured with ``delivery = "poll"``.

One ``ssf.PollClient`` per transmitter, run by the embedded service's lifespan. A SET is
acknowledged only after ``SsfReceiver.accept`` returned, which is after its events were
processed and its jti recorded in the same transaction; the poll client's own jti check is
read-only here (``SeenOnly``), so a crash between receiving and accepting makes the
transmitter redeliver instead of the SET being acked as a duplicate and lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import structlog

from ssf import PollClient, VerifiedSet
from tokenwarden.ssf_jti import SqlJtiStore
from tokenwarden.ssf_receiver import SsfReceiver

log = structlog.get_logger("tokenwarden.ssf.poll")


class SeenOnly:
    """A ``JtiStore`` that only answers whether a pair was accepted: the receiver records
    it when it acts (in the batch's transaction)."""

    def __init__(self, store: SqlJtiStore) -> None:
        self.store = store

    async def seen_or_add(
        self, issuer: str, jti: str, *, now: datetime, retention: timedelta
    ) -> bool:
        return await self.store.seen(issuer, jti, now=now)


class Pollers:
    """The running poll loops; ``stop`` ends them after their acknowledgements are sent."""

    def __init__(
        self,
        receiver: SsfReceiver,
        *,
        client: httpx.AsyncClient,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.stop_event = asyncio.Event()
        self.clients: list[PollClient] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.clock = clock
        for t in receiver.transmitters:
            if t.delivery != "poll" or not t.poll_endpoint:
                continue

            async def accept(verified: VerifiedSet) -> None:
                await receiver.accept(verified, now=self.clock())

            token = t.bearer_token.get_secret_value() if t.bearer_token else None
            self.clients.append(
                PollClient(
                    t.poll_endpoint,
                    client=client,
                    verifier=receiver.verifier,
                    accept=accept,
                    jti_store=SeenOnly(receiver.jti),
                    token=token,
                    issuer=t.issuer,
                    long_poll_seconds=t.long_poll_seconds,
                    retention=receiver.retention,
                )
            )

    def start(self) -> None:
        for poller in self.clients:
            self._tasks.append(
                asyncio.create_task(
                    poller.run(stop=self.stop_event, clock=self.clock), name="tokenwarden-ssf-poll"
                )
            )
            log.info("polling SSF transmitter", endpoint=poller.endpoint)

    async def stop(self) -> None:
        self.stop_event.set()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=10)
        self._tasks.clear()
