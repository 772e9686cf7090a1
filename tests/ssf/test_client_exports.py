"""The discovery, stream management and poll modules export their public API from ``ssf``."""

from __future__ import annotations

import inspect

import ssf

MODULES = ("discovery", "poll", "remote", "stream")
# Plumbing shared by the three clients, public to them but not part of the package API.
INTERNAL = {"Reply", "bearer", "insecure", "is_loopback", "send"}


def test_client_modules_are_exported() -> None:
    public = {
        name
        for module in MODULES
        for name, value in vars(getattr(ssf, module)).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "") == f"ssf.{module}"
    }
    assert public - INTERNAL - set(ssf.__all__) == set()
    for name in INTERNAL:
        assert name not in ssf.__all__


def test_client_error_types_are_where_callers_catch_them() -> None:
    assert issubclass(ssf.StreamPending, ssf.StreamError)
    assert not issubclass(ssf.StreamError, ssf.SsfError)  # transport vs content, kept apart
    pending = ssf.StreamPending("PATCH", "https://tr.example.com/stream", 202, "")
    assert pending.status == 202 and not pending.retryable
    assert "HTTP 202" in str(pending)
    for status, retryable in ((None, True), (408, True), (429, True), (503, True), (404, False)):
        assert ssf.StreamError("GET", "u", status).retryable is retryable
    long_body = "x" * 10_000
    assert len(ssf.StreamError("GET", "u", 500, long_body).body) == 2048
