"""Detector state for the embedded runner: a dict that knows what changed.

Detectors write into it during a batch; after the batch the pipeline saves only the keys
that changed (one statement per batch) so a restart reloads the baselines. Keys under a
held prefix (the usage baselines) may be left pending for a later, larger save.

A batch whose detectors raise must leave the state as it found it (the detectors change
records in place, ``detectors.base``): between ``start_undo`` and ``stop_undo`` the first
touch of each key keeps a copy of it, and ``undo`` puts those back.

The usage detectors keep their records as objects (``detectors.records``); the changes are
handed out as the JSON a store keeps (``take_changes``), and a value loaded from the store
is JSON until a detector first looks at it.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from detectors.records import to_json

_MISSING: Any = object()
#: state as the store keeps it (``revocation.store.records``): JSON, non-string keys allowed
_JSON = orjson.OPT_NON_STR_KEYS


class TrackedState(MutableMapping[str, Any]):
    """A dict that records the keys written and deleted since the last ``take_changes``."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(initial or {})
        self._changed: set[str] = set()
        self._deleted: set[str] = set()
        #: while recording (``start_undo``): key -> (its value, changed?, deleted?) as
        #: first touched
        self._undo: dict[str, tuple[Any, bool, bool]] | None = None

    def _remember(self, key: str) -> None:
        assert self._undo is not None
        value = self._data.get(key, _MISSING)
        self._undo[key] = (
            value if value is _MISSING else orjson.dumps(value, option=_JSON, default=to_json),
            key in self._changed,
            key in self._deleted,
        )

    def __getitem__(self, key: str) -> Any:
        undo = self._undo
        if undo is not None and key not in undo:
            self._remember(key)
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        # the detectors' hot path: dict.get, not the ABC's try/except over __getitem__
        undo = self._undo
        if undo is not None and key not in undo:
            self._remember(key)
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __setitem__(self, key: str, value: Any) -> None:
        undo = self._undo
        if undo is not None and key not in undo:
            self._remember(key)
        self._data[key] = value
        self._changed.add(key)
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        undo = self._undo
        if undo is not None and key not in undo:
            self._remember(key)
        del self._data[key]
        self._changed.discard(key)
        self._deleted.add(key)

    # -- undoing a failed batch ----------------------------------------------------------

    def start_undo(self) -> None:
        """Record from now on what the detectors touch, so ``undo`` can put it back (a
        call while recording starts afresh: what was changed so far is kept)."""
        self._undo = {}

    def undo(self) -> None:
        """Put back every key touched since ``start_undo`` (or the last ``undo``) as it
        was, pending changes included; keep recording."""
        undo = self._undo
        if undo is None:
            raise RuntimeError("undo without start_undo")
        data, changed, deleted = self._data, self._changed, self._deleted
        for key, (value, was_changed, was_deleted) in undo.items():
            if value is _MISSING:
                data.pop(key, None)
            else:
                data[key] = orjson.loads(value)
            if was_changed:
                changed.add(key)
            else:
                changed.discard(key)
            if was_deleted:
                deleted.add(key)
            else:
                deleted.discard(key)
        self._undo = {}

    def stop_undo(self) -> None:
        """Stop recording; the changes stand."""
        self._undo = None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def take_changes(self, *, hold: tuple[str, ...] = ()) -> tuple[dict[str, Any], set[str]]:
        """The changed keys with their values as stored (JSON: ``detectors.records``), and
        the deleted keys; then forget both. Keys starting with one of ``hold`` stay pending
        for a later ``take_changes``."""
        data = self._data
        if hold:
            kept_changed = {k for k in self._changed if k.startswith(hold)}
            kept_deleted = {k for k in self._deleted if k.startswith(hold)}
            changed = {k: to_json(data[k]) for k in self._changed - kept_changed}
            deleted = self._deleted - kept_deleted
            self._changed, self._deleted = kept_changed, kept_deleted
            return changed, deleted
        changed = {k: to_json(data[k]) for k in self._changed}
        deleted = self._deleted
        self._changed, self._deleted = set(), set()
        return changed, deleted

    @property
    def pending(self) -> int:
        """How many changed or deleted keys wait to be saved."""
        return len(self._changed) + len(self._deleted)
