"""Ingest errors.

Exception tree::

    IngestError                 a whole batch is refused (nothing of it is applied)
    ├── BatchTooLarge           over the byte or event limit          -> 413
    └── MalformedBatch          not JSON / not an array or NDJSON     -> 400

A single bad event is not an exception: it becomes a ``Rejected`` entry with its index and
reason, and the other events of the batch go on.
"""

from __future__ import annotations

from dataclasses import dataclass


class IngestError(Exception):
    """A batch that cannot be taken at all."""

    code = "invalid_batch"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class BatchTooLarge(IngestError):
    code = "batch_too_large"
    status = 413


class MalformedBatch(IngestError):
    code = "malformed_batch"
    status = 400


@dataclass(frozen=True, slots=True)
class Rejected:
    """One event of a batch that was refused: its 0-based index in the batch, and why."""

    index: int
    reason: str
