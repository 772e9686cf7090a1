"""Signed deliveries: HMAC-SHA256 (RFC 2104) over a timestamp and the body.

Every webhook delivery (revocations and alerts) carries::

    Tokenwarden-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
    Idempotency-Key: <outbox entry id, the same on every retry>

A receiver MUST recompute the HMAC over the raw body with the shared secret and compare in
constant time, and SHOULD refuse a timestamp more than ``REPLAY_WINDOW`` seconds from its
clock — a captured request cannot be replayed later. Our own retries are fresh requests
(new timestamp, new signature) with the *same* ``Idempotency-Key``: a receiver dedupes on
that key, kept at least as long as the tokens it revokes live (retries may come hours
apart while a receiver is down). ``verify_signature`` is what a Python receiver calls.
"""

from __future__ import annotations

import hashlib
import hmac

#: How far a signed timestamp may be from the receiver's clock, in seconds.
REPLAY_WINDOW = 300
SIGNATURE_HEADER = "Tokenwarden-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class SignatureError(ValueError):
    """A delivery's signature is missing, malformed, wrong, or outside the replay window."""


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, *, timestamp: int, body: bytes) -> str:
    """The ``Tokenwarden-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: bytes, header: str | None, body: bytes, *, now: float, window: int = REPLAY_WINDOW
) -> int:
    """Check a ``Tokenwarden-Signature`` header; return its timestamp or raise
    ``SignatureError``."""
    if not header:
        raise SignatureError("missing signature header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise SignatureError("malformed signature header") from None
    if abs(now - timestamp) > window:
        raise SignatureError(f"timestamp {timestamp} is outside the {window}s replay window")
    if not hmac.compare_digest(given, _mac(secret, timestamp, body)):
        raise SignatureError("signature does not match")
    return timestamp
