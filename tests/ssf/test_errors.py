"""SsfError: exactly the RFC 8935 codes, their statuses and the failure body."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from ssf import (
    ERROR_CODES,
    AccessDenied,
    AuthenticationFailed,
    InvalidAudience,
    InvalidIssuer,
    InvalidKey,
    InvalidRequest,
    SsfError,
)
from ssf.errors import excerpt

CODES = {
    "invalid_request": (InvalidRequest, 400),
    "invalid_key": (InvalidKey, 400),
    "invalid_issuer": (InvalidIssuer, 400),
    "invalid_audience": (InvalidAudience, 400),
    "authentication_failed": (AuthenticationFailed, 401),
    "access_denied": (AccessDenied, 403),
}


def test_exactly_the_rfc_8935_codes() -> None:
    assert set(CODES) == ERROR_CODES


@pytest.mark.parametrize(("err", "expected"), CODES.items())
def test_codes(err: Any, expected: tuple[Any, int]) -> None:
    cls, status = expected
    error = SsfError(err, "why")
    assert (error.err, error.description, error.status) == (err, "why", status)
    assert error.to_body() == {"err": err, "description": "why"}
    typed = SsfError.of(err, "why")
    assert type(typed) is cls and isinstance(typed, SsfError)
    assert (typed.err, typed.status, typed.to_body()) == (err, status, error.to_body())
    direct: SsfError = expected[0]("why")
    assert direct.err == err
    again = pickle.loads(pickle.dumps(typed))  # noqa: S301 - our own object
    assert type(again) is cls and again.to_body() == typed.to_body()


def test_unknown_code_is_a_bug() -> None:
    with pytest.raises(ValueError, match="RFC 8935"):
        SsfError("invalid_state", "x")  # type: ignore[arg-type]


def test_excerpt_is_short() -> None:
    assert excerpt("x" * 1000).endswith("…")
    assert len(excerpt("x" * 1000)) == 64
    assert excerpt("abc") == "'abc'"
