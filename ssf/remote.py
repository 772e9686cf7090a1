"""Outbound HTTP to a transmitter: the one request helper, bearer tokens, :class:`StreamError`.

Every call the receiver makes to a transmitter — discovery (SSF 1.0 §7.2), stream management
(§8) and polling (RFC 8936) — goes through an ``httpx.AsyncClient`` the caller injects, and
through :func:`send` here: one place that sets the headers, caps the size of what it reads,
and turns transport failures and unexpected statuses into :class:`StreamError`.

Two kinds of failure, kept apart::

    Exception
    ├── StreamError          the HTTP exchange failed: no answer at all (``status`` None: DNS,
    │   │                    connect, timeout, reset) or a status the operation does not accept.
    │   │                    Carries ``method``, ``url``, ``status`` and the start of ``body``.
    │   └── StreamPending    202 to an update / replace / status change: "accepted, but not
    │                        processed. Receiver MAY try the same request later" (SSF 1.0
    │                        §8.1.1.3, §8.1.1.4, §8.1.2.2).
    └── SsfError             (ssf.errors) the answer arrived but what it says is refused:
                             ``InvalidIssuer`` when an ``issuer`` / ``iss`` does not match
                             (SSF 1.0 §7.2.4, §8.1.1), ``InvalidAudience`` when a stream's
                             ``aud`` lacks ours, ``InvalidRequest`` when a body is not JSON, has
                             the wrong shape, or names a URL that is not https.

Secrets stay out of errors and logs: the bearer token is only ever put in the request header,
``body`` keeps at most :data:`BODY_EXCERPT` characters of what the transmitter answered, and no
request header is recorded anywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson

from ssf.errors import InvalidRequest, excerpt

#: How much of an error body a :class:`StreamError` keeps.
BODY_EXCERPT: Final = 2048
#: Default cap on a response body (stream configurations, discovery documents, poll batches).
DEFAULT_MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
_LOOPBACK_NAMES: Final = frozenset({"localhost"})

#: A bearer token: a fixed string, an async callable returning a fresh one (an OAuth client
#: credentials token that expires), or None for a transmitter that wants no Authorization.
TokenSource = str | Callable[[], Awaitable[str]] | None


class StreamError(Exception):
    """An HTTP exchange with a transmitter failed.

    ``status`` is None when no HTTP answer arrived (connection refused, timeout, reset);
    ``body`` holds the start of the answer (at most :data:`BODY_EXCERPT` characters) so the
    transmitter's own error message reaches the operator.
    """

    def __init__(
        self, method: str, url: str, status: int | None, body: str = "", reason: str = ""
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body[:BODY_EXCERPT]
        self.reason = reason
        answer = "no answer" if status is None else f"HTTP {status}"
        text = f"{method} {url}: {answer}"
        if reason:
            text += f" ({reason})"
        if self.body:
            text += f": {excerpt(self.body, 300)}"
        super().__init__(text)

    @property
    def retryable(self) -> bool:
        """True for failures that may pass on their own: no answer, 408, 429, 5xx."""
        return self.status is None or self.status in (408, 429) or self.status >= 500


class StreamPending(StreamError):
    """202: the transmitter accepted the request but has not processed it yet."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A transmitter's answer: the status and the (size-capped) body."""

    method: str
    url: str
    status: int
    body: bytes

    def json(self, what: str) -> Any:
        """The body parsed as JSON; :class:`~ssf.errors.InvalidRequest` names ``what`` if not."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                f"{what} from {self.url} is not JSON: {excerpt(self.body[:200])}"
            ) from None

    def json_object(self, what: str) -> dict[str, Any]:
        """The body as a JSON object (:class:`~ssf.errors.InvalidRequest` otherwise)."""
        value = self.json(what)
        if not isinstance(value, dict):
            raise InvalidRequest(f"{what} from {self.url} is not a JSON object")
        return value


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure(url: str, *, allow_http: bool = False) -> str | None:
    """Why ``url`` may not be used for a transmitter endpoint, or None if it may.

    SSF 1.0 §7.1: each endpoint URL "MUST use HTTP over TLS". Plain ``http`` is allowed only
    for loopback addresses (tests, a sidecar) or when the caller sets ``allow_http``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{excerpt(url)} is not a URL"
    if not parts.hostname:
        return f"{excerpt(url)} has no host"
    if parts.fragment:
        return f"{excerpt(url)} has a fragment"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and (allow_http or is_loopback(url)):
        return None
    return f"{excerpt(url)} does not use https"


async def bearer(token: TokenSource) -> dict[str, str]:
    """The ``Authorization`` header for ``token`` (RFC 6750 §2.1), empty for None."""
    if token is None:
        return {}
    value = token if isinstance(token, str) else await token()
    return {"Authorization": f"Bearer {value}"}


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    expect: Collection[int],
    token: TokenSource = None,
    body: Any = None,
    params: Mapping[str, str] | None = None,
    timeout: httpx.Timeout | float = 10.0,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Reply:
    """One HTTP request; the :class:`Reply` if its status is in ``expect``.

    ``body`` (any JSON value) is sent as ``application/json``. Raises :class:`StreamError` if
    no answer arrives, the body exceeds ``max_bytes``, or the status is not expected
    (:class:`StreamPending` for an unexpected 202).
    """
    headers = {"Accept": "application/json", **(await bearer(token))}
    content: bytes | None = None
    if body is not None:
        content = orjson.dumps(body)
        headers["Content-Type"] = "application/json"
    try:
        async with client.stream(
            method, url, content=content, params=params, headers=headers, timeout=timeout
        ) as response:
            shown = str(response.request.url)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise StreamError(
                    method, shown, response.status_code, reason=f"body over {max_bytes} bytes"
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise StreamError(
                        method, shown, response.status_code, reason=f"body over {max_bytes} bytes"
                    )
                chunks.append(chunk)
            status = response.status_code
    except httpx.HTTPError as error:
        raise StreamError(method, url, None, reason=type(error).__name__) from error
    raw = b"".join(chunks)
    if status not in expect:
        kind = StreamPending if status == 202 else StreamError
        raise kind(method, shown, status, raw.decode("utf-8", "replace"))
    return Reply(method, shown, status, raw)
