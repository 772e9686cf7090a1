"""Shared pieces of the auth tests: a started app, keys of each kind, the route table."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

#: Routes that are open on purpose, or authenticate on their own terms.
OPEN = {
    ("GET", "/healthz"),  # liveness: no secrets
    ("GET", "/readyz"),  # readiness: ok/fail per component only
    ("POST", "/ssf/events"),  # RFC 8935 push: each transmitter's own authorization
    ("GET", "/services/collector/health"),  # Splunk HEC health, as Splunk's is
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/"),  # the dashboard's page: no data; it signs in and calls /v1 itself
    ("GET", "/dashboard/{name}"),  # the dashboard's scripts, style sheet and icon
}
#: Writes a viewer may make: asking ``/v1/check`` is a read.
VIEWER_WRITES = {("POST", "/v1/check")}


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, as the router sees them — including routes
    that are left out of the OpenAPI schema (``/metrics``, HEC aliases)."""
    out: set[tuple[str, str]] = set()
    for route in app.routes:
        contexts: Iterator[Any]
        effective = getattr(route, "effective_route_contexts", None)
        contexts = iter(effective()) if callable(effective) else iter([route])
        for ctx in contexts:
            path = getattr(ctx, "path", None)
            methods = getattr(ctx, "methods", None) or ()
            if path is None:
                continue
            for method in methods:
                if method != "HEAD":
                    out.add((method, path))
    return sorted(out)


def concrete(path: str) -> str:
    """A path with every parameter filled in (``{id}``, ``{key:path}``)."""
    return re.sub(r"\{[^}]+\}", "x-1", path)


def is_api_route(route: object) -> bool:
    return isinstance(route, APIRoute)


def sqlite_url(tmp_path: Path, name: str = "tw.db") -> str:
    return f"sqlite:///{tmp_path / name}"
