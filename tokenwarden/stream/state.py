"""Detector state of one partition, kept in a faust Table.

The detectors take a ``MutableMapping`` (``detectors.base.State``); here it is a
``PartitionState``: a ``TrackedState`` (so ``Stages.detect`` takes its changes as it does
embedded) whose reads fall through to the Table's in-memory store. Nothing is written to
the Table while the engine runs — that may be off the event loop, and faust refuses Table
writes outside stream iteration anyway. After the batch's outputs are durable, ``flush``
writes each changed key once (a deleted key as a tombstone), then the partition's
watermark, all while the agent iterates the message: faust sends them to the changelog and
flushes its producer before it commits the message's offset.

Table layout (one Table per stage, co-partitioned with its topic; memory store, changelog
topic ``<app_id>-<table>-changelog``):

* ``<partition>|<state key>`` → value (``buckets == 0``, the default), or
  ``<partition>|#<n>`` → ``{state key: value, ...}`` for ``buckets == N``: state keys hashed
  into N buckets per partition, one Table write per dirty bucket instead of per dirty key
  (fewer, larger changelog records; see the README's figures for the trade-off).
* ``<partition>|@applied`` → the offset of the last message whose state was flushed.

The store holds each value as its **JSON bytes** — the changelog record's value exactly
(faust's json codec, :func:`tokenwarden.stream.changelog.encode`), kept as they are by the
Tables' ``raw`` value serializer, so faust's recovery puts the same bytes back. A read
decodes a fresh object for the detectors to change in place (the usage records as their
objects: ``detectors.records.decode``) while the store keeps the bytes as they were (a take
rolled back finds them untouched); ``apply`` encodes each changed value once, and those
bytes are both the store's new value and the changelog record. (The store used to hold the
decoded objects: every first read in a take then deep-copied the value in Python and
``apply``'s changes were encoded again for the changelog — at 10,000 entities, 5,000-event
takes, more than twice the cost of detecting itself.)

The partition prefix keeps each partition's keys apart in the one store faust keeps for all
of them, so a sweep touches only its own partition's keys and a partition that moved away
can be dropped from memory. The watermark makes replays harmless: after a crash, messages
up to it are skipped (their outputs were durable before their state was written), so state
is updated effectively once; a message past it is processed again and its outputs are
idempotent (deterministic detection ids, orders keyed by idempotency key).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import orjson

from detectors.records import copied, decode
from tokenwarden.state import TrackedState
from tokenwarden.stream.changelog import encode

WATERMARK = "@applied"
_BUCKET = "#"
_MISSING: Any = object()
_loads = orjson.loads


def bucket_of(key: str, buckets: int) -> int:
    return zlib.crc32(key.encode()) % buckets


class PartitionState(TrackedState):
    """One partition's detector state: changes in memory, reads through to ``store``.

    A value read from the store is decoded from its bytes (module docstring) and kept with
    the pending changes until ``apply`` or ``rollback``: the detectors change records in
    place (``detectors.base``), and a take that is rolled back and run again must find
    the store as it was, not with the failed attempt's counts in it.
    """

    def __init__(
        self, store: MutableMapping[str, Any], partition: int, *, buckets: int = 0
    ) -> None:
        super().__init__()
        self._store = store
        self.partition = partition
        self._prefix = f"{partition}|"
        self._buckets = buckets
        self._mark: tuple[dict[str, Any], set[str], set[str]] | None = None
        #: buckets decoded since the last ``apply``/``rollback`` (``buckets`` only): a key
        #: read from one moves to the pending values, so each is handed out once
        self._decoded: dict[int, dict[str, Any]] = {}

    # -- the mapping the detectors see ---------------------------------------------------

    def _bucket(self, n: int) -> dict[str, Any] | None:
        bucket = self._decoded.get(n)
        if bucket is None:
            raw = self._store.get(f"{self._prefix}{_BUCKET}{n}")
            if raw is None:
                return None
            bucket = self._decoded[n] = _loads(raw)
        return bucket

    def _read(self, key: str, default: Any) -> Any:
        """The stored value of ``key``, decoded: an object of its own the detectors may
        change (class doc), kept with the pending values; ``default`` if it has none (no
        exception raised and caught: the detectors look up keys not stored yet for every
        new entity)."""
        if self._buckets:
            bucket = self._bucket(bucket_of(key, self._buckets))
            if bucket is None:
                return default
            value = bucket.get(key, _MISSING)
            if value is _MISSING:
                return default
        else:
            raw = self._store.get(self._prefix + key)
            if raw is None:
                return default
            value = _loads(raw)
        value = self._data[key] = decode(key, value)  # the usage records as their objects
        return value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    # TrackedState serves ``get`` and ``in`` from its dict alone (the detectors' hot path);
    # here they must fall through to the Table's store like ``[]`` does.
    def get(self, key: str, default: Any = None) -> Any:
        value = self._data.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if key in self._deleted:
            return default
        return self._read(key, default)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self.get(key, _MISSING) is not _MISSING

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._data.pop(key, None)
        self._changed.discard(key)
        self._deleted.add(key)

    def _stored_keys(self) -> Iterator[str]:
        prefix = self._prefix
        n = len(prefix)
        for table_key in list(self._store.keys()):
            if not table_key.startswith(prefix):
                continue
            name = table_key[n:]
            if name == WATERMARK:
                continue
            if self._buckets:
                if name.startswith(_BUCKET):
                    yield from _loads(self._store[table_key])
            else:
                yield name

    def __iter__(self) -> Iterator[str]:
        seen = set(self._data)
        yield from list(self._data)
        for key in self._stored_keys():
            if key not in seen and key not in self._deleted:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    # -- the runner's side ---------------------------------------------------------------

    def checkpoint(self) -> tuple[dict[str, Any], set[str], set[str]]:
        """A copy of the pending changes, to ``rollback`` to if a detector raises (values
        only read are left out: the store still has them as they were)."""
        data = {k: copied(v) for k, v in self._data.items() if k in self._changed}
        return data, set(self._changed), set(self._deleted)

    def rollback(self, checkpoint: tuple[dict[str, Any], set[str], set[str]]) -> None:
        data, changed, deleted = checkpoint
        self._data = {k: copied(v) for k, v in data.items()}  # the checkpoint stays intact
        self._changed, self._deleted = set(changed), set(deleted)
        self._decoded.clear()

    # ``TrackedState``'s undo, by checkpoint: reads here are copies already
    def start_undo(self) -> None:
        self._mark = self.checkpoint()

    def undo(self) -> None:
        if self._mark is None:
            raise RuntimeError("undo without start_undo")
        self.rollback(self._mark)

    def stop_undo(self) -> None:
        self._mark = None

    @property
    def applied(self) -> int:
        """Offset of the last message whose state is in the Table (-1: none)."""
        raw = self._store.get(self._prefix + WATERMARK)
        return int(_loads(raw)) if raw is not None else -1

    def apply(
        self, changed: Mapping[str, Any], deleted: set[str], *, offset: int | None
    ) -> list[tuple[str, bytes | None]]:
        """Apply a batch's changes (as ``take_changes`` gave them) and the watermark to the
        in-memory store, forget the pending values, and return the changelog records that
        make them durable — ``(table key, value bytes)``, ``None`` for a deletion, the
        watermark last — for the caller to send to the Table's changelog partition."""
        store = self._store
        prefix = self._prefix
        records: list[tuple[str, bytes | None]] = []
        if self._buckets:
            dirty: dict[int, list[str]] = {}
            for key in (*changed, *deleted):
                dirty.setdefault(bucket_of(key, self._buckets), []).append(key)
            for n, keys in dirty.items():
                table_key = f"{prefix}{_BUCKET}{n}"
                raw = store.get(table_key)
                # decoded afresh: the values handed out of ``_decoded`` may have changed
                bucket = _loads(raw) if raw is not None else {}
                for key in keys:
                    if key in changed:
                        bucket[key] = changed[key]
                    else:
                        bucket.pop(key, None)
                if bucket:
                    raw = store[table_key] = encode(bucket)
                    records.append((table_key, raw))
                elif store.pop(table_key, None) is not None:
                    records.append((table_key, None))
        else:
            for key, value in changed.items():
                raw = store[prefix + key] = encode(value)
                records.append((prefix + key, raw))
            for key in deleted:
                if key not in changed and store.pop(prefix + key, None) is not None:
                    records.append((prefix + key, None))
        if offset is not None:
            raw = store[prefix + WATERMARK] = encode(offset)
            records.append((prefix + WATERMARK, raw))
        self._data.clear()
        self._changed.clear()
        self._deleted.clear()
        self._decoded.clear()
        return records


def drop_partitions(store: MutableMapping[str, Any], keep: set[int]) -> int:
    """Forget (in memory only) the keys of partitions not in ``keep``: they moved to another
    worker, whose changelog recovery now owns them. Returns how many were dropped."""
    gone = [k for k in list(store.keys()) if int(k.split("|", 1)[0]) not in keep]
    for k in gone:
        del store[k]
    return len(gone)
