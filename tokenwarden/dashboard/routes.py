"""``GET /`` (the dashboard shell) and ``GET /dashboard/{name}`` (its assets).

Assets are read from the package (``importlib.resources``), so an installed wheel serves
the same files as a checkout. Only plain file names of the ``static`` folder with a known
type are served — no sub-paths, so nothing outside the folder can be named. Both routes are
open and left out of the OpenAPI schema: they carry no data; the data is behind ``/v1``.
"""

from __future__ import annotations

import re
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from tokenwarden.api.errors import ApiError

router = APIRouter(include_in_schema=False)

#: Scripts, styles and API calls from this origin only; no inline script or style
#: element, no plugins, no framing, no ``<base>`` rewriting, no form posts elsewhere.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(html|js|css|svg)$")


def read_asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and media type of ``static/<name>``; ``None`` for anything else."""
    match = _NAME.match(name)
    if match is None:
        return None
    asset = resources.files("tokenwarden.dashboard").joinpath("static", name)
    if not asset.is_file():
        return None
    return asset.read_bytes(), MEDIA_TYPES[match.group(1)]


def _response(name: str) -> Response:
    found = read_asset(name)
    if found is None:
        raise ApiError(404, "not_found", f"no dashboard asset {name!r}")
    body, media_type = found
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
def dashboard() -> Response:
    """The dashboard's single page; it signs in and calls the API from the browser."""
    return _response("index.html")


@router.get("/dashboard/{name}")
def dashboard_asset(name: str) -> Response:
    """A script, style sheet or icon of the dashboard."""
    return _response(name)
