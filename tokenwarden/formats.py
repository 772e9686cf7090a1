"""Which normalizer a batch goes through: ``format=`` given, or detected per record.

Shared by ``POST /v1/events``, the HEC endpoints and ``tokenwarden replay``. Without a
format, each record's format is the one normalizer that recognises it (``ingest.chooser``);
a record none or several recognise but that has an ``action`` member is read as our own
wire schema, so its rejection names the field that is wrong rather than "unknown format".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ingest import (
    NORMALIZERS,
    FieldMapping,
    NormalizedBatch,
    Normalizer,
    TokenHasher,
    build_registry,
    chooser,
    get_normalizer,
    normalize_batch,
)
from tokenwarden.settings import IngestSettings

AUTO = "auto"


def build_formats(settings: IngestSettings) -> Mapping[str, Normalizer]:
    """The built-in formats plus the declarative mappings of the config."""
    return build_registry(FieldMapping.from_config(m) for m in settings.mappings)


def normalize(
    items: Sequence[Any],
    *,
    formats: Mapping[str, Normalizer],
    fmt: str | None,
    hasher: TokenHasher,
    tenant: str | None,
    start: int = 0,
) -> NormalizedBatch:
    """Map and validate ``items`` in format ``fmt`` (None or ``auto``: detect per record).
    Raises ``ingest.UnknownFormat`` for a format name nobody registered."""
    if fmt is not None and fmt != AUTO:
        return normalize_batch(
            items,
            normalizer=get_normalizer(fmt, formats),
            hasher=hasher,
            tenant=tenant,
            start=start,
        )
    detect = chooser(formats)
    native = formats.get("native", NORMALIZERS["native"])

    def choose(record: Mapping[str, Any]) -> Normalizer | None:
        return detect(record) or (native if "action" in record else None)

    return normalize_batch(items, normalizer=choose, hasher=hasher, tenant=tenant, start=start)
