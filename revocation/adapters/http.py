"""Turning an HTTP answer (or its absence) into a delivery outcome."""

from __future__ import annotations

import httpx

from revocation.delivery import DeliveryError, PermanentDeliveryError

#: Statuses worth retrying as is: timeouts, rate limits, the server's own trouble.
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (RFC 9110 §10.2.3; the HTTP-date form is ignored)."""
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def raise_for(response: httpx.Response, *, what: str) -> None:
    """Nothing for a 2xx; ``DeliveryError`` for a retryable status, else
    ``PermanentDeliveryError`` — with the status and a short piece of the body."""
    if response.is_success:
        return
    detail = response.text[:300].strip()
    message = f"{what} answered {response.status_code}" + (f": {detail}" if detail else "")
    if response.status_code in RETRYABLE or response.status_code >= 500:
        raise DeliveryError(message, retry_after=retry_after(response))
    raise PermanentDeliveryError(message)


def transport_error(exc: httpx.HTTPError, *, what: str) -> DeliveryError:
    """A network failure (refused, reset, timed out): always worth retrying."""
    return DeliveryError(f"{what} unreachable: {type(exc).__name__}: {exc}")
