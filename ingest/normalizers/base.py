"""The Normalizer protocol: one real log format -> the AuditEvent wire schema.

A normalizer turns one decoded JSON record of its format into a wire-schema dict (the
input of ``AuditEvent.model_validate``); it does no I/O and keeps no per-call state, so one
instance serves every batch and every worker. Three outcomes per record:

* a **dict** — the event, validated next by ``AuditEvent`` (raw tokens are hashed there);
* **None** — the record is of this format and *recognised*, but of a kind that says nothing
  about a token's life (an Okta ``user.account.update_profile``, a Keycloak
  ``UPDATE_PASSWORD``, an oidc-provider ``interaction.saved``, …). Forwarders send whole
  streams, not just what we watch; counting those as errors would bury the real ones, so
  an ignored record is neither an event nor a rejection;
* **NormalizeError(reason)** — the record cannot be mapped (not this format, a required
  field missing or of the wrong type, no tenant). ``normalize_batch`` turns it into a
  ``Rejected(index, reason)`` and the rest of the batch goes on (DESIGN.md: "a malformed
  event is rejected alone, with its index and reason").

``matches(record)`` is a cheap structural test used by ``detect_format``; it never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from ingest.batch import ParsedBatch, _Undecodable, describe
from ingest.errors import Rejected
from ingest.event import AuditEvent
from ingest.secrets import TokenHasher

_MAX_REASON = 300


class NormalizeError(Exception):
    """A record its normalizer cannot map; ``reason`` says which field and why.

    ``code`` is a short machine code (``unmappable``, ``missing_field``, ``bad_field``,
    ``no_tenant``); ``reason`` is the human description that ends up in ``Rejected``.
    """

    def __init__(self, reason: str, *, code: str = "unmappable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@runtime_checkable
class Normalizer(Protocol):
    """Maps records of one log format to AuditEvent wire dicts."""

    @property
    def name(self) -> str:
        """The format name (``?format=<name>``); read-only, so frozen classes qualify."""
        ...

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        """The wire dict for ``record``; None for a recognised record kind that is ignored
        on purpose; raises ``NormalizeError`` for a record that cannot be mapped.

        ``tenant`` is the tenant configured for the source (the ingest route's), used when
        the record does not name its own.
        """
        ...

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True when ``record`` has the shape of this format. Never raises."""
        ...


@dataclass(slots=True)
class NormalizedBatch(ParsedBatch):
    """A ``ParsedBatch`` plus the indexes of records recognised and ignored on purpose."""

    ignored: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.events) + len(self.rejected) + len(self.ignored)


#: Picks the normalizer for one record (format detection); None when it cannot tell.
Chooser = Callable[[Mapping[str, Any]], "Normalizer | None"]


def normalize_batch(
    items: Iterable[Any],
    *,
    normalizer: Normalizer | Chooser,
    hasher: TokenHasher,
    tenant: str | None,
    start: int = 0,
) -> NormalizedBatch:
    """Map then validate each record; a bad record is rejected alone with a specific reason.

    ``normalizer`` is one format for the whole batch, or a chooser that picks each record's
    format (``detect.chooser``); a record it cannot place is rejected, asking for
    ``format=``. Never raises for one record: a non-object, an undecodable NDJSON line, a
    ``NormalizeError``, a validation error — and, as a last line of defence, a bug in a
    normalizer — each become a ``Rejected(index, reason)``.
    """
    out = NormalizedBatch()
    ctx = {"hasher": hasher}
    fixed = normalizer if isinstance(normalizer, Normalizer) else None
    for index, item in enumerate(items, start):
        if isinstance(item, _Undecodable):
            out.rejected.append(Rejected(index, item.reason))
            continue
        if not isinstance(item, dict):
            name = fixed.name if fixed is not None else "record"
            out.rejected.append(
                Rejected(index, f"{name}: a record must be a JSON object, not {_kind(item)}")
            )
            continue
        if fixed is not None:
            chosen: Normalizer | None = fixed
        else:
            assert not isinstance(normalizer, Normalizer)
            chosen = normalizer(item)
        if chosen is None:
            out.rejected.append(
                Rejected(index, "the record's format is unknown or ambiguous; send format=<name>")
            )
            continue
        name = chosen.name
        try:
            mapped = chosen.normalize(item, tenant=tenant)
        except NormalizeError as exc:
            out.rejected.append(Rejected(index, f"{name}: {exc.reason}"[:_MAX_REASON]))
            continue
        except Exception as exc:  # a normalizer bug must not take the batch down
            reason = f"{name}: normalizer failed ({type(exc).__name__})"
            out.rejected.append(Rejected(index, reason))
            continue
        if mapped is None:
            out.ignored.append(index)
            continue
        try:
            out.events.append(AuditEvent.model_validate(mapped, context=ctx))
        except ValidationError as exc:
            out.rejected.append(Rejected(index, f"{name}: {describe(exc)}"[:_MAX_REASON]))
        except (TypeError, ValueError, OverflowError) as exc:
            # e.g. an integer beyond 64 bits reaching orjson in the stable-id digest
            reason = f"{name}: unserialisable value ({exc})"
            out.rejected.append(Rejected(index, reason[:_MAX_REASON]))
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
