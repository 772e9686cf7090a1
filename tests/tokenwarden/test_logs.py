"""Logs never carry a JWT or a bearer secret, whoever logs them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from tokenwarden.logs import configure_logging

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJqYW5lQGFjbWUuZXhhbXBsZSJ9."
    "TUVVQ0lRRHNpZ25hdHVyZWJ5dGVz"
)
SECRET = "s3cr3t-opaque-refresh-value"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging binds the (captured) stderr of this test; undo it afterwards."""
    factory = logging.getLogRecordFactory()
    yield
    structlog.reset_defaults()
    logging.setLogRecordFactory(factory)
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "_tokenwarden", False):
            logging.getLogger().removeHandler(handler)


def test_structlog_and_stdlib_logs_are_redacted(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="info", fmt="json")
    structlog.get_logger("t").info(
        "token seen", token=JWT, header=f"Bearer {SECRET}", nested={"list": [JWT]}
    )
    # a third-party logger with a handler of its own (as uvicorn installs) is redacted too
    foreign = logging.getLogger("some.library")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    foreign.addHandler(handler)
    foreign.propagate = False
    try:
        foreign.warning("bad request with Authorization: Bearer %s and %s", SECRET, JWT)
    finally:
        foreign.removeHandler(handler)
    err = capfd.readouterr().err + stream.getvalue()
    assert "token seen" in err and "bad request" in err
    assert JWT not in err
    assert SECRET not in err
    assert err.count("[REDACTED]") >= 4


def test_exceptions_in_logs_are_redacted(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="info", fmt="json")
    try:
        raise ValueError(f"could not parse {JWT}")
    except ValueError:
        structlog.get_logger("t").exception("structlog failure")
        logging.getLogger("sqlalchemy.engine").exception("stdlib failure")
    err = capfd.readouterr().err
    assert "structlog failure" in err
    assert "ValueError" in err
    assert JWT not in err


def test_structured_messages_keep_their_shape_and_are_redacted() -> None:
    configure_logging(level="info", fmt="json")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("some.json.handler")
    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning({"event": "login", "token": JWT, "n": 3})
    finally:
        logger.removeHandler(handler)
    assert seen[0].msg == {"event": "login", "token": "[REDACTED]", "n": 3}
