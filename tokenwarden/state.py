"""Detector state for the embedded runner: a dict that knows what changed.

Detectors write into it during a batch; after the batch the pipeline saves only the keys
that changed (one statement per batch) so a restart reloads the baselines.
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

    def take_changes(self) -> tuple[dict[str, Any], set[str]]:
        """The changed keys with their values, and the deleted keys; then forget both."""
        changed = {k: self._data[k] for k in self._changed}
        deleted = self._deleted
        self._changed, self._deleted = set(), set()
        return changed, deleted
