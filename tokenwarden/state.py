"""Detector state for the embedded runner: a dict that knows what changed.

Detectors write into it during a batch; after the batch the pipeline saves only the keys
that changed (one statement per batch) so a restart reloads the baselines. Keys under a
held prefix (the usage baselines) may be left pending for a later, larger save.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any


class TrackedState(MutableMapping[str, Any]):
    """A dict that records the keys written and deleted since the last ``take_changes``."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(initial or {})
        self._changed: set[str] = set()
        self._deleted: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        # the detectors' hot path: dict.get, not the ABC's try/except over __getitem__
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._changed.add(key)
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed.discard(key)
        self._deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def take_changes(self, *, hold: tuple[str, ...] = ()) -> tuple[dict[str, Any], set[str]]:
        """The changed keys with their values, and the deleted keys; then forget both.
        Keys starting with one of ``hold`` stay pending for a later ``take_changes``."""
        if hold:
            kept_changed = {k for k in self._changed if k.startswith(hold)}
            kept_deleted = {k for k in self._deleted if k.startswith(hold)}
            changed = {k: self._data[k] for k in self._changed - kept_changed}
            deleted = self._deleted - kept_deleted
            self._changed, self._deleted = kept_changed, kept_deleted
            return changed, deleted
        changed = {k: self._data[k] for k in self._changed}
        deleted = self._deleted
        self._changed, self._deleted = set(), set()
        return changed, deleted

    @property
    def pending(self) -> int:
        """How many changed or deleted keys wait to be saved."""
        return len(self._changed) + len(self._deleted)
