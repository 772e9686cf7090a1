"""Format detection: which normalizer a record belongs to, when that is unambiguous.

``POST /v1/events`` and ``tokenwarden replay`` take ``format=…``; without it, each record's
format is the one whose ``matches`` accepts it — only when exactly one does. Two matches
(a record shaped like two formats) or none give ``None``: guessing would map a record
with the wrong rules, so the caller asks for an explicit format instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.normalizers.base import Chooser, Normalizer
from ingest.normalizers.registry import NORMALIZERS


def detect_format(record: Any, normalizers: Mapping[str, Normalizer] = NORMALIZERS) -> str | None:
    """The name of the only normalizer that matches ``record``, else None."""
    if not isinstance(record, Mapping):
        return None
    found: str | None = None
    for name, normalizer in normalizers.items():
        try:
            hit = normalizer.matches(record)
        except Exception:  # a matcher must never raise; treat a bug as "no"
            hit = False
        if hit:
            if found is not None:
                return None
            found = name
    return found


def chooser(normalizers: Mapping[str, Normalizer] = NORMALIZERS) -> Chooser:
    """A per-record format chooser for ``normalize_batch`` (see ``detect_format``)."""

    def choose(record: Mapping[str, Any]) -> Normalizer | None:
        name = detect_format(record, normalizers)
        return None if name is None else normalizers[name]

    return choose
