"""Refresh-token reuse: a rotated refresh token presented again.

OAuth 2.0 Security BCP (RFC 9700 §4.14.2): with refresh token rotation, "if a refresh token
is compromised and subsequently used by both the attacker and the legitimate client, one of
them will present an invalidated refresh token, which will inform the authorization server
of the breach" — and the server should revoke the whole family. We watch the family from
the audit stream, so we catch it even when the IdP does not, and we tell a replay apart from
the one benign case: two refreshes racing from the same client.

Per family (state key ``rr/<tenant>/<family>``) we remember which refresh tokens were
already consumed: the token issued in exchange, when (event time), by which client, from
which network (ASN, else /24 or /48), and the rotation generation. Then:

* ``token.refreshed`` (or a failed refresh) presenting an already-consumed token is reuse
  — a critical detection — unless it is the benign concurrent refresh: the presented token
  is the one immediately before the current token, the second exchange comes within
  ``grace_seconds`` of the first, from the same client and the same network. That case is
  counted, not reported.
* An older generation replayed inside the grace window is still reuse, and so is a replay
  from another network or another client inside the window.
* The same exchange delivered twice (same presented and same issued token) is a duplicate
  record, not reuse.
* An IdP that detects reuse itself (``attributes.reason == "refresh_token_reused"`` on an
  ``auth.failed`` or ``token.refreshed``) is reported as reuse too.

State is bounded: a family's memory expires ``family_lifetime_seconds`` after its last
event (default 30 days) and keeps at most ``max_consumed_per_family`` consumed tokens
(oldest dropped first). When events carry no ``token.family_id`` the family is found by a
token → family index kept for the same tokens (key ``rrt/<tenant>/<token>``); a token never
seen before starts a family named after itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from detectors.base import State
from detectors.detection import Detection, Severity
from detectors.network import network_of
from ingest import AuditEvent

IDP_REUSE_REASON = "refresh_token_reused"
_FAMILY_PREFIX = "rr/"
_ACTIONS = frozenset({"token.refreshed", "auth.failed"})
_INDEX_PREFIX = "rrt/"

# Layout of one consumed entry: [issued token, event time (epoch s), client, network, generation]
_CHILD, _TIME, _CLIENT, _NET, _GEN = range(5)


@dataclass(frozen=True, slots=True)
class RefreshReuseConfig:
    """Parameters (``[detectors.refresh_reuse]`` in the config file)."""

    grace_seconds: float = 10.0
    family_lifetime_seconds: float = 30 * 86400.0
    max_consumed_per_family: int = 64

    def __post_init__(self) -> None:
        if self.grace_seconds < 0:
            raise ValueError("grace_seconds must be >= 0")
        if self.family_lifetime_seconds <= 0:
            raise ValueError("family_lifetime_seconds must be > 0")
        if self.max_consumed_per_family < 1:
            raise ValueError("max_consumed_per_family must be >= 1")


def _fmt(value: str | None) -> str:
    return value if value is not None else "unknown"


class RefreshReuseDetector:
    """Refresh-token reuse within a token family (RFC 9700 §4.14.2). Critical, score 1.0."""

    name: ClassVar[str] = "refresh_reuse"

    def __init__(self, config: RefreshReuseConfig | None = None) -> None:
        self.config = config or RefreshReuseConfig()

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> RefreshReuseDetector:
        return cls(RefreshReuseConfig(**params))

    # -- the detector ------------------------------------------------------------------

    @staticmethod
    def accepts(action: str) -> bool:
        """Only refreshes and failed authentications can say anything (the Engine calls
        ``detect`` with no other action)."""
        return action in _ACTIONS

    def detect(self, event: AuditEvent, state: State, now: datetime) -> list[Detection]:
        tok = event.token
        if tok is None:
            return []
        is_refresh = event.action == "token.refreshed"
        is_failed_refresh = event.action == "auth.failed" and (
            tok.type == "refresh_token" or tok.parent_id is not None
        )
        if not (is_refresh or is_failed_refresh):
            return []
        success = is_refresh and event.outcome == "success"
        presented = tok.parent_id if (success or tok.parent_id) else tok.id
        if presented is None:
            return []
        family = tok.family_id or self._family_of(state, event.tenant, presented) or presented

        if event.attributes.get("reason") == IDP_REUSE_REASON:
            return [self._idp_reported(event, family, presented)]

        t = event.time.timestamp()
        key = f"{_FAMILY_PREFIX}{event.tenant}/{family}"
        rec = self._load(state, key, t)
        consumed: dict[str, list[Any]] = rec["c"]
        client = event.client_id
        net = network_of(event)
        first = consumed.get(presented)

        if first is None:
            if not success or tok.id is None:
                return []  # a failed refresh of a token we never saw consumed
            gen = int(rec["g"]) + 1
            consumed[presented] = [tok.id, t, client, net, gen]
            rec["g"] = gen
            rec["cur"] = tok.id
            rec["seen"] = max(float(rec["seen"]), t)
            self._index(state, event.tenant, family, (presented, tok.id), t)
            self._evict(state, event.tenant, consumed)
            state[key] = rec
            return []

        if success and first[_CHILD] == tok.id:
            return []  # the same exchange reported twice

        rec["seen"] = max(float(rec["seen"]), t)
        elapsed = t - float(first[_TIME])
        if (
            first[_CHILD] == rec["cur"]
            and abs(elapsed) <= self.config.grace_seconds
            and first[_CLIENT] == client
            and first[_NET] == net
        ):
            rec["n"] = int(rec["n"]) + 1  # benign concurrent refresh
            if success and tok.id is not None:
                rec["cur"] = tok.id
                self._index(state, event.tenant, family, (tok.id,), t)
            state[key] = rec
            return []

        state[key] = rec
        behind = int(rec["g"]) - int(first[_GEN])
        reason = (
            f"refresh token {presented} of family {family} was presented again "
            f"{elapsed:.1f}s after it was rotated (first by client {_fmt(first[_CLIENT])} "
            f"from {_fmt(first[_NET])}, now by client {_fmt(client)} from {_fmt(net)}"
            f"{', failed' if not success else ''}); {behind} generation(s) behind the "
            f"current token"
        )
        evidence = {
            "family_id": family,
            "presented_token": presented,
            "first_issued_token": first[_CHILD],
            "first_used_at": first[_TIME],
            "first_client": first[_CLIENT],
            "first_network": first[_NET],
            "client": client,
            "network": net,
            "seconds_after_rotation": round(elapsed, 3),
            "generations_behind": behind,
            "grace_seconds": self.config.grace_seconds,
            "outcome": event.outcome,
        }
        return [self._detection(event, family, reason, evidence)]

    def sweep(self, state: State, now: datetime) -> int:
        """Forget families idle for longer than the family lifetime (and their index)."""
        cutoff = now.timestamp() - self.config.family_lifetime_seconds
        removed = 0
        for key in [k for k in list(state.keys()) if k.startswith(_FAMILY_PREFIX)]:
            rec = state.get(key)
            if rec is None or float(rec["seen"]) >= cutoff:
                continue
            tenant = key[len(_FAMILY_PREFIX) :].split("/", 1)[0]
            for token in [*rec["c"].keys(), rec.get("cur")]:
                if token is not None and state.pop(f"{_INDEX_PREFIX}{tenant}/{token}", None):
                    removed += 1
            del state[key]
            removed += 1
        return removed

    # -- helpers -----------------------------------------------------------------------

    def _load(self, state: State, key: str, t: float) -> dict[str, Any]:
        rec = state.get(key)
        if rec is None or t - float(rec["seen"]) > self.config.family_lifetime_seconds:
            return {"c": {}, "cur": None, "g": 0, "n": 0, "seen": t}
        # copy so a faust Table sees the write when we assign it back
        return {**rec, "c": dict(rec["c"])}

    def _family_of(self, state: State, tenant: str, token: str) -> str | None:
        entry = state.get(f"{_INDEX_PREFIX}{tenant}/{token}")
        return None if entry is None else str(entry[0])

    def _index(
        self, state: State, tenant: str, family: str, tokens: tuple[str, ...], t: float
    ) -> None:
        for token in tokens:
            if token != family:
                state[f"{_INDEX_PREFIX}{tenant}/{token}"] = [family, t]

    def _evict(self, state: State, tenant: str, consumed: dict[str, list[Any]]) -> None:
        while len(consumed) > self.config.max_consumed_per_family:
            oldest = next(iter(consumed))
            del consumed[oldest]
            state.pop(f"{_INDEX_PREFIX}{tenant}/{oldest}", None)

    def _idp_reported(self, event: AuditEvent, family: str, presented: str) -> Detection:
        reporter = event.attributes.get("vendor") or event.attributes.get("source") or "the IdP"
        reason = (
            f"{reporter} reported reuse of refresh token {presented} of family {family} "
            f"(client {_fmt(event.client_id)} from {_fmt(network_of(event))})"
        )
        evidence = {
            "family_id": family,
            "presented_token": presented,
            "reported_by": str(reporter),
            "client": event.client_id,
            "network": network_of(event),
        }
        return self._detection(event, family, reason, evidence)

    def _detection(
        self, event: AuditEvent, family: str, reason: str, evidence: dict[str, Any]
    ) -> Detection:
        entity = f"{event.tenant}/family/{family}"
        event_ids = (event.id,)
        return Detection(
            id=Detection.make_id(self.name, entity, event_ids),
            detector=self.name,
            entity=entity,
            tenant=event.tenant,
            score=1.0,
            severity=Severity.CRITICAL,
            reason=reason,
            evidence=evidence,
            event_ids=event_ids,
            time=event.time,
            user=event.user,
            agent=event.agent,
            client_id=event.client_id,
            family_id=family,
            session_id=_session_of(event),
        )


def _session_of(event: AuditEvent) -> str | None:
    value = event.attributes.get("session_id")
    return value if isinstance(value, str) else None
