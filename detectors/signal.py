"""Shared Signals as detections: what an IdP told us becomes evidence the policy acts on.

Every verified SET event arrives as an AuditEvent ``ssf.<event-name>`` (see
``ingest.security_events``). This detector turns the ones that call for action into
detections with ``evidence["signal"]`` set to the event name, which the policy's signal
rules match (README, "Policy"):

| signal | detection |
| --- | --- |
| CAEP ``session-revoked``, RISC ``sessions-revoked`` | critical |
| RISC ``credential-compromise``, ``account-disabled``, ``account-purged`` | critical |
| RISC ``account-enabled`` | info (the policy releases what ``account-disabled`` threw) |
| CAEP ``credential-change``, ``token-claims-change``; Google ``token(s)-revoked`` | high |
| CAEP ``device-compliance-change`` to ``not-compliant`` | critical (to ``compliant``: none) |
| CAEP ``assurance-level-change``, ``risk-level-change``; RISC
  ``account-credential-change-required``, ``identifier-changed``, ``identifier-recycled``,
  ``recovery-activated``, ``recovery-information-changed`` | low, recorded; raises the
  user's risk (``detectors.risk``) for ``risk_ttl_seconds`` |
| RISC ``opt-*`` | low, recorded |
| CAEP ``session-established``, ``session-presented`` | none: kept in state as context |
| SSF ``verification``, ``stream-updated`` | none: the receiver handles them |

``risk-level-change`` raises risk only to ``high``/``medium`` levels, and a change to
``low`` clears it; ``assurance-level-change`` raises it only when the level went down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from detectors.base import State
from detectors.detection import Detection, Severity
from detectors.risk import clear_risk, raise_risk, sweep_risk
from ingest import AuditEvent

_ACT: dict[str, tuple[Severity, float]] = {
    "session_revoked": (Severity.CRITICAL, 1.0),
    "sessions_revoked": (Severity.CRITICAL, 1.0),
    "credential_compromise": (Severity.CRITICAL, 1.0),
    "account_disabled": (Severity.CRITICAL, 1.0),
    "account_purged": (Severity.CRITICAL, 1.0),
    "account_enabled": (Severity.INFO, 0.0),
    "credential_change": (Severity.HIGH, 0.8),
    "token_claims_change": (Severity.HIGH, 0.8),
    "tokens_revoked": (Severity.HIGH, 0.8),
    "token_revoked": (Severity.HIGH, 0.8),
}
#: signal -> risk boost it gives the user
_RISK: dict[str, float] = {
    "assurance_level_change": 0.3,
    "risk_level_change": 0.5,
    "account_credential_change_required": 0.5,
    "identifier_changed": 0.2,
    "identifier_recycled": 0.5,
    "recovery_activated": 0.4,
    "recovery_information_changed": 0.4,
}
_RECORDED = frozenset({"opt_in", "opt_out_initiated", "opt_out_cancelled", "opt_out_effective"})
_CONTEXT = frozenset({"session_established", "session_presented"})
_LEVELS = {"low": 0, "medium": 1, "high": 2}
_CONTEXT_PREFIX = "sctx/"


@dataclass(frozen=True, slots=True)
class SignalConfig:
    """Parameters (``[detectors.signal]``)."""

    risk_ttl_seconds: float = 24 * 3600.0
    context_ttl_seconds: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.risk_ttl_seconds <= 0 or self.context_ttl_seconds <= 0:
            raise ValueError("ttl values must be > 0")


class SignalDetector:
    """Shared Signals (SSF/CAEP/RISC) from IdPs: acts on revocations, disables and
    compromises; records the rest and raises the user's risk where it makes sense."""

    name: ClassVar[str] = "signal"

    def __init__(self, config: SignalConfig | None = None) -> None:
        self.config = config or SignalConfig()

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> SignalDetector:
        return cls(SignalConfig(**params))

    @staticmethod
    def accepts(action: str) -> bool:
        """Only Shared Signals events (``ssf.*``); the Engine calls ``detect`` with no other."""
        return action.startswith("ssf.")

    def detect(self, event: AuditEvent, state: State, now: datetime) -> list[Detection]:
        if not event.action.startswith("ssf."):
            return []
        signal = event.action[4:]
        claims = event.attributes.get("claims")
        claims = claims if isinstance(claims, dict) else {}
        if signal in _CONTEXT:
            if event.user:
                key = f"{_CONTEXT_PREFIX}{event.tenant}/{event.user}"
                state[key] = {"signal": signal, "at": event.time.timestamp()}
            return []
        if signal == "device_compliance_change":
            if claims.get("current_status") != "not-compliant":
                return []
            return [self._detection(event, signal, Severity.CRITICAL, 0.9, claims)]
        if signal in _ACT:
            severity, score = _ACT[signal]
            if signal == "account_enabled" and event.user:
                clear_risk(state, tenant=event.tenant, user=event.user)
            return [self._detection(event, signal, severity, score, claims)]
        if signal in _RISK:
            boost = self._risk_boost(signal, claims)
            if event.user and boost is not None:
                if boost > 0:
                    raise_risk(
                        state,
                        tenant=event.tenant,
                        user=event.user,
                        boost=boost,
                        signal=signal,
                        at=event.time,
                        ttl_seconds=self.config.risk_ttl_seconds,
                    )
                else:
                    clear_risk(state, tenant=event.tenant, user=event.user)
            return [self._detection(event, signal, Severity.LOW, boost or 0.0, claims)]
        if signal in _RECORDED:
            return [self._detection(event, signal, Severity.LOW, 0.0, claims)]
        return []

    def sweep(self, state: State, now: datetime) -> int:
        removed = sweep_risk(state, now)
        cutoff = now.timestamp() - self.config.context_ttl_seconds
        for key in [k for k in list(state.keys()) if k.startswith(_CONTEXT_PREFIX)]:
            if float(state[key]["at"]) < cutoff:
                del state[key]
                removed += 1
        return removed

    @staticmethod
    def _risk_boost(signal: str, claims: dict[str, Any]) -> float | None:
        """The boost a risk-type signal gives; 0 clears the risk, None leaves it alone."""
        if signal == "risk_level_change":
            level = _LEVELS.get(str(claims.get("current_level", "")).lower())
            if level is None:
                return None
            return (0.0, 0.3, 0.5)[level]
        if signal == "assurance_level_change":
            change = str(claims.get("change_direction", "")).lower()
            return _RISK[signal] if change == "decrease" else None
        return _RISK[signal]

    def _detection(
        self,
        event: AuditEvent,
        signal: str,
        severity: Severity,
        score: float,
        claims: dict[str, Any],
    ) -> Detection:
        ssf = event.attributes.get("ssf")
        ssf = ssf if isinstance(ssf, dict) else {}
        issuer = str(ssf.get("issuer", "an SSF transmitter"))
        subject = event.user or (event.token.id if event.token else None) or "an unnamed subject"
        session = _str(event.attributes.get("session_id"))
        device = _str(event.attributes.get("device_id"))
        detail = _str(claims.get("reason_admin") and _reason_text(claims["reason_admin"]))
        reason = f"{issuer} sent {signal.replace('_', '-')} for {subject}"
        if session:
            reason += f" (session {session})"
        if device:
            reason += f" (device {device})"
        if detail:
            reason += f": {detail}"
        entity = f"{event.tenant}/user/{event.user}" if event.user else f"{event.tenant}/{subject}"
        evidence: dict[str, Any] = {
            "signal": signal,
            "issuer": issuer,
            "jti": ssf.get("jti"),
            "txn": ssf.get("txn"),
            "event_type": ssf.get("event_type"),
            "subject": ssf.get("subject"),
            "claims": claims,
        }
        if event.token and event.token.id:
            evidence["token_id"] = event.token.id
        event_ids = (event.id,)
        return Detection(
            id=Detection.make_id(self.name, entity, event_ids),
            detector=self.name,
            entity=entity,
            tenant=event.tenant,
            score=score,
            severity=severity,
            reason=reason,
            evidence=evidence,
            event_ids=event_ids,
            time=event.time,
            user=event.user,
            agent=event.agent,
            client_id=event.client_id,
            family_id=event.token.family_id if event.token else None,
            session_id=session,
            device_id=device,
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _reason_text(value: Any) -> str | None:
    """CAEP ``reason_admin`` is a map of language tag -> text (CAEP 1.0 §2)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        text = value.get("en") or next(iter(value.values()), None)
        return text if isinstance(text, str) else None
    return None
