"""Writing a batch's state changes to a Table's changelog in one produce request.

A faust Table write (``table[key] = value``) sends one changelog record through faust's
producer buffer and aiokafka's per-message ``send``: ~46 µs per key measured here, so a
1,000-event batch that touches 700 keys would spend 32 ms on them. The same records built
into one record batch with aiokafka's batch API cost ~2 µs each. ``ChangelogWriter`` does
that: the records a ``PartitionState`` returns (already applied to the Table's in-memory
store) go to the Table's changelog topic, in the partition of the message that changed
them, keys and values serialized exactly as faust's ``json`` codec serializes them (faust's
orjson options: :func:`encode`; a value comes already encoded, as the store keeps it), and
the caller waits for the acknowledgement before the message counts as processed — so the
changelog holds the state before the source offset is committed, and faust's own recovery
reads these records like any others when a partition moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

#: faust's json codec options (``faust.utils.json.dumps``)
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
MAX_BATCH_BYTES = 1024 * 1024


def own_bytes(data: bytes) -> bytes:
    """``data`` copied into a bytes object of its own size, for orjson output that is kept.
    orjson returns the buffer it wrote into (~1 KiB or more, shrunk in place); kept by the
    thousand — the Table's values, a take's changelog records — each cost ~1.3 µs in the
    allocator here, against ~0.1 µs for this copy, whose buffer is freed and reused at once
    (docs/speed-log.md, session 13)."""
    return memoryview(data).tobytes()


def encode(value: Any) -> bytes:
    """``value`` as faust's json codec writes it (``faust.utils.json.dumps``), in bytes of
    their own (kept: ``own_bytes``)."""
    return own_bytes(orjson.dumps(value, option=_OPTIONS))


def serialize(records: Sequence[tuple[str, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
    """``(table key, encoded value or None)`` records as changelog keys and values."""
    return [(encode(k), v) for k, v in records]


class ChangelogWriter:
    """Its own aiokafka producer (acks=all), used only through the batch API."""

    def __init__(self, bootstrap_servers: list[str], *, client_id: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            linger_ms=0,
            max_batch_size=MAX_BATCH_BYTES,
            max_request_size=4 * MAX_BATCH_BYTES,
            enable_idempotence=False,
        )
        self.records = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def write(
        self, topic: str, partition: int, records: Sequence[tuple[str, bytes | None]]
    ) -> None:
        """Send ``records`` to ``topic``/``partition`` in order, as few record batches as
        fit; return once the broker acknowledged all of them."""
        if not records:
            return
        futures = []
        batch = self._producer.create_batch()
        filled = 0
        for key, value in serialize(records):
            if batch.append(key=key, value=value, timestamp=None) is None:
                if not filled:
                    raise ValueError(f"a changelog record of {topic} exceeds {MAX_BATCH_BYTES} B")
                futures.append(await self._producer.send_batch(batch, topic, partition=partition))
                batch = self._producer.create_batch()
                filled = 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a changelog record of {topic} exceeds {MAX_BATCH_BYTES} B")
            filled += 1
        futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
        self.records += len(records)
