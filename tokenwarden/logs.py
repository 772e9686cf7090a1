"""Structured logging that never prints a secret.

Every log line — ours through structlog, and the standard library's (uvicorn, SQLAlchemy)
— goes through ``ingest.redact`` first, so a JWT, a ``Bearer …`` credential or a known
secret-token shape is replaced by ``[REDACTED]`` whatever logged it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from ingest import redact, redact_text


def _redact_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {k: redact(v) for k, v in event_dict.items()}


_base_factory = logging.getLogRecordFactory()


def _redacting_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Builds every standard-library LogRecord with its message (and traceback) redacted,
    whichever logger and handler it goes to (uvicorn installs handlers of its own)."""
    record = _base_factory(*args, **kwargs)
    if isinstance(record.msg, str):
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep it, redacted, rather than crash
            message = record.msg
        record.msg = redact_text(message)
        record.args = None
    else:  # a structured message (a dict for a JSON handler): redacted, shape kept
        record.msg = redact(record.msg)
        if record.args:
            record.args = redact(record.args)
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
    return record


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def configure_logging(*, level: str = "info", fmt: str = "console") -> None:
    """Set up structlog and the root logger (idempotent)."""
    lvl = getattr(logging, level.upper())
    logging.setLogRecordFactory(_redacting_record_factory)
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_tokenwarden", False):
            root.removeHandler(old)
    handler._tokenwarden = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(lvl)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # resolve sys.stderr when a line is written, not when logging is configured
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
