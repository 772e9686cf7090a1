"""Entity risk raised by Shared Signals, read by detectors to lower their thresholds.

State key ``risk/<tenant>/<user>``: ``{"boost": 0..1, "until": epoch s, "signals": [...]}``.
A boost decays to nothing at ``until``; a new signal takes the larger boost and extends the
window. ``boost`` is how much of a detector's threshold distance to shave off (the Engine's
formula in the README).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from detectors.base import State

_PREFIX = "risk/"
MAX_SIGNALS = 5


def risk_key(tenant: str, user: str) -> str:
    return f"{_PREFIX}{tenant}/{user}"


def raise_risk(
    state: State,
    *,
    tenant: str,
    user: str,
    boost: float,
    signal: str,
    at: datetime,
    ttl_seconds: float,
) -> dict[str, Any]:
    """Raise (never lower) the user's risk until ``at + ttl_seconds``; returns the record."""
    key = risk_key(tenant, user)
    now = at.timestamp()
    rec = state.get(key)
    if rec is None or float(rec["until"]) <= now:
        rec = {"boost": 0.0, "until": now, "signals": []}
    new = {
        "boost": max(float(rec["boost"]), boost),
        "until": max(float(rec["until"]), now + ttl_seconds),
        "signals": [*rec["signals"], signal][-MAX_SIGNALS:],
    }
    state[key] = new
    return new


def clear_risk(state: State, *, tenant: str, user: str) -> None:
    state.pop(risk_key(tenant, user), None)


def risk_of(state: State, *, tenant: str, user: str | None, now: datetime) -> float:
    """The user's current boost (0 when none or expired)."""
    if user is None:
        return 0.0
    rec = state.get(risk_key(tenant, user))
    if rec is None or float(rec["until"]) <= now.timestamp():
        return 0.0
    return float(rec["boost"])


def sweep_risk(state: State, now: datetime) -> int:
    cutoff = now.timestamp()
    expired = [
        k
        for k in list(state.keys())
        if k.startswith(_PREFIX) and float(state[k]["until"]) <= cutoff
    ]
    for k in expired:
        del state[k]
    return len(expired)
