"""Security events: the event-type catalogue and :class:`SecurityEvent`, one per event of a SET.

RFC 8417 §2.2, the ``events`` claim: "This claim contains a set of event statements that
each provide information describing a single logical event that has occurred about a
security subject [...]. The value of the "events" claim is a JSON object whose members are
name/value pairs whose names are URIs identifying the event statements being expressed.
[...] For each name present, the corresponding value MUST be a JSON object. The JSON object
MAY be an empty object ("{}")". SSF 1.0 §4.2.1: "The "events" claim SHOULD contain only one
event." The verifier enforces exactly one in strict mode; :func:`events_of` returns one
:class:`SecurityEvent` per member either way.

Where the subject comes from (SSF 1.0 §3.1): "A top-level claim named ``sub_id`` MUST be used
to describe the primary subject of the event"; event types "already defined in the CAEP and
RISC specifications MAY use a ``subject`` field within the ``events`` claim". So, per event:
the event's own ``subject`` if present, else the top-level ``sub_id``, else — only for
``legacy`` transmitters — the top-level JWT ``sub`` as an ``iss_sub`` subject of the SET's
issuer (pre-SSF SETs, RFC 8417 §2.2 "sub"), and for a subject-less legacy verification
event (Google's RISC verification carries only ``state``) an ``opaque`` subject whose ``id``
is the issuer: the stream of that transmitter. Anything else without a subject is refused.

Catalogue (short names are the ``ssf.<event-name>`` actions of the AuditEvent):

==================================  =========================================  ===============
short name                          event type URI (suffix)                    defined in
==================================  =========================================  ===============
session_revoked                     caep/event-type/session-revoked            CAEP 1.0 §3.1
token_claims_change                 caep/event-type/token-claims-change        CAEP 1.0 §3.2
credential_change                   caep/event-type/credential-change          CAEP 1.0 §3.3
assurance_level_change              caep/event-type/assurance-level-change     CAEP 1.0 §3.4
device_compliance_change            caep/event-type/device-compliance-change   CAEP 1.0 §3.5
session_established                 caep/event-type/session-established        CAEP 1.0 §3.6
session_presented                   caep/event-type/session-presented          CAEP 1.0 §3.7
risk_level_change                   caep/event-type/risk-level-change          CAEP 1.0 §3.8
account_credential_change_required  risc/event-type/account-credential-...     RISC 1.0 §2.1
account_purged                      risc/event-type/account-purged             RISC 1.0 §2.2
account_disabled                    risc/event-type/account-disabled           RISC 1.0 §2.3
account_enabled                     risc/event-type/account-enabled            RISC 1.0 §2.4
identifier_changed                  risc/event-type/identifier-changed         RISC 1.0 §2.5
identifier_recycled                 risc/event-type/identifier-recycled        RISC 1.0 §2.6
credential_compromise               risc/event-type/credential-compromise      RISC 1.0 §2.7
opt_in                              risc/event-type/opt-in                     RISC 1.0 §2.8.1
opt_out_initiated                   risc/event-type/opt-out-initiated          RISC 1.0 §2.8.2
opt_out_cancelled                   risc/event-type/opt-out-cancelled          RISC 1.0 §2.8.3
opt_out_effective                   risc/event-type/opt-out-effective          RISC 1.0 §2.8.4
recovery_activated                  risc/event-type/recovery-activated         RISC 1.0 §2.9
recovery_information_changed        risc/event-type/recovery-information-...   RISC 1.0 §2.10
sessions_revoked (deprecated)       risc/event-type/sessions-revoked           RISC 1.0 §2.11
verification                        ssf/event-type/verification                SSF 1.0 §8.1.4.1
stream_updated                      ssf/event-type/stream-updated              SSF 1.0 §8.1.5
==================================  =========================================  ===============

Legacy URIs that real transmitters still send map onto the same names (``legacy=True`` in
:class:`EventType`): Google's RISC verification (``risc/event-type/verification``), the
pre-1.0 SSE names (``sse/event-type/verification``, ``sse/event-type/stream-updated``), and
Google's OAuth token events (``oauth/event-type/tokens-revoked`` -> ``tokens_revoked``,
``oauth/event-type/token-revoked`` -> ``token_revoked``). Any other URI is kept as it came,
with ``event_name=None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from ssf.errors import InvalidRequest, excerpt
from ssf.subject import IssSubSubject, OpaqueSubject, Subject, parse_subject

CAEP_BASE: Final = "https://schemas.openid.net/secevent/caep/event-type/"
RISC_BASE: Final = "https://schemas.openid.net/secevent/risc/event-type/"
SSF_BASE: Final = "https://schemas.openid.net/secevent/ssf/event-type/"
_SSE_BASE: Final = "https://schemas.openid.net/secevent/sse/event-type/"
_OAUTH_BASE: Final = "https://schemas.openid.net/secevent/oauth/event-type/"


@dataclass(frozen=True, slots=True)
class EventType:
    """One catalogue entry: the URI, its short name, where it is defined."""

    uri: str
    name: str
    spec: str
    legacy: bool = False


_CATALOGUE: Final[tuple[EventType, ...]] = (
    EventType(CAEP_BASE + "session-revoked", "session_revoked", "CAEP 1.0 §3.1"),
    EventType(CAEP_BASE + "token-claims-change", "token_claims_change", "CAEP 1.0 §3.2"),
    EventType(CAEP_BASE + "credential-change", "credential_change", "CAEP 1.0 §3.3"),
    EventType(CAEP_BASE + "assurance-level-change", "assurance_level_change", "CAEP 1.0 §3.4"),
    EventType(CAEP_BASE + "device-compliance-change", "device_compliance_change", "CAEP 1.0 §3.5"),
    EventType(CAEP_BASE + "session-established", "session_established", "CAEP 1.0 §3.6"),
    EventType(CAEP_BASE + "session-presented", "session_presented", "CAEP 1.0 §3.7"),
    EventType(CAEP_BASE + "risk-level-change", "risk_level_change", "CAEP 1.0 §3.8"),
    EventType(
        RISC_BASE + "account-credential-change-required",
        "account_credential_change_required",
        "RISC 1.0 §2.1",
    ),
    EventType(RISC_BASE + "account-purged", "account_purged", "RISC 1.0 §2.2"),
    EventType(RISC_BASE + "account-disabled", "account_disabled", "RISC 1.0 §2.3"),
    EventType(RISC_BASE + "account-enabled", "account_enabled", "RISC 1.0 §2.4"),
    EventType(RISC_BASE + "identifier-changed", "identifier_changed", "RISC 1.0 §2.5"),
    EventType(RISC_BASE + "identifier-recycled", "identifier_recycled", "RISC 1.0 §2.6"),
    EventType(RISC_BASE + "credential-compromise", "credential_compromise", "RISC 1.0 §2.7"),
    EventType(RISC_BASE + "opt-in", "opt_in", "RISC 1.0 §2.8.1"),
    EventType(RISC_BASE + "opt-out-initiated", "opt_out_initiated", "RISC 1.0 §2.8.2"),
    EventType(RISC_BASE + "opt-out-cancelled", "opt_out_cancelled", "RISC 1.0 §2.8.3"),
    EventType(RISC_BASE + "opt-out-effective", "opt_out_effective", "RISC 1.0 §2.8.4"),
    EventType(RISC_BASE + "recovery-activated", "recovery_activated", "RISC 1.0 §2.9"),
    EventType(
        RISC_BASE + "recovery-information-changed",
        "recovery_information_changed",
        "RISC 1.0 §2.10",
    ),
    EventType(
        RISC_BASE + "sessions-revoked", "sessions_revoked", "RISC 1.0 §2.11 (deprecated)", True
    ),
    EventType(SSF_BASE + "verification", "verification", "SSF 1.0 §8.1.4.1"),
    EventType(SSF_BASE + "stream-updated", "stream_updated", "SSF 1.0 §8.1.5"),
    # Legacy URIs still sent by deployed transmitters.
    EventType(RISC_BASE + "verification", "verification", "Google RISC", True),
    EventType(_SSE_BASE + "verification", "verification", "SSE drafts", True),
    EventType(_SSE_BASE + "stream-updated", "stream_updated", "SSE drafts", True),
    EventType(_OAUTH_BASE + "tokens-revoked", "tokens_revoked", "Google RISC (OAuth)", True),
    EventType(_OAUTH_BASE + "token-revoked", "token_revoked", "Google RISC (OAuth)", True),
)

#: Event type URI -> catalogue entry.
EVENT_TYPES: Final[Mapping[str, EventType]] = MappingProxyType({e.uri: e for e in _CATALOGUE})

#: Short name -> the current (non-legacy) URI, where there is one.
EVENT_URIS: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{e.name: e.uri for e in _CATALOGUE if e.legacy},
        **{e.name: e.uri for e in _CATALOGUE if not e.legacy},
    }
)


def event_name(uri: str) -> str | None:
    """The short name of an event type URI (``"session_revoked"``), or None if unknown."""
    entry = EVENT_TYPES.get(uri)
    return entry.name if entry is not None else None


class SecurityEvent(BaseModel):
    """One event of a verified SET.

    ``claims`` are the event's own members minus ``subject``; ``sub_id`` is the SET's raw
    top-level ``sub_id`` (``None`` if absent), kept as evidence. Both are plain JSON values:
    treat them as read-only (the model is frozen, its JSON members are not deep-frozen).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str
    jti: str
    iat: datetime
    audience: tuple[str, ...]
    txn: str | None = None
    event_type: str
    event_name: str | None
    subject: Subject
    claims: Mapping[str, Any]
    sub_id: Mapping[str, Any] | None = None


def _string(payload: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"the {name} claim is required")
        return None
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"the {name} claim must be a non-empty string, not {excerpt(value)}")
    return value


def numeric_date(payload: Mapping[str, Any], name: str) -> datetime | None:
    """An RFC 7519 §2 NumericDate claim as an aware UTC datetime (None if absent)."""
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"the {name} claim must be a NumericDate, not {excerpt(value)}")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidRequest(f"the {name} claim is out of range: {excerpt(value)}") from None


def audience_of(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """RFC 7519 §4.1.3 ``aud``: a string or an array of strings; () if absent."""
    value = payload.get("aud")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidRequest(f"the aud claim must be a string or an array of strings: {excerpt(value)}")


def event_map(payload: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``events`` claim, checked against RFC 8417 §2.2 (an object of objects, ≥ 1)."""
    events = payload.get("events")
    if events is None:
        raise InvalidRequest("the events claim is required (RFC 8417 §2.2)")
    if not isinstance(events, dict):
        raise InvalidRequest(f"the events claim must be a JSON object, not {excerpt(events)}")
    if not events:
        raise InvalidRequest("the events claim must contain at least one event")
    for uri, body in events.items():
        if not uri:
            raise InvalidRequest("an event type URI in the events claim is empty")
        if not isinstance(body, dict):
            raise InvalidRequest(
                f"event {excerpt(uri)} must be a JSON object (RFC 8417 §2.2), not {excerpt(body)}"
            )
    return events


def events_of(payload: Mapping[str, Any], *, legacy: bool = False) -> tuple[SecurityEvent, ...]:
    """One :class:`SecurityEvent` per member of the SET's ``events`` claim.

    ``payload`` is the (verified) JWT claims set. Raises
    :class:`~ssf.errors.InvalidRequest` for a missing or malformed ``iss``, ``jti``, ``iat``,
    ``aud``, ``txn``, ``events``, ``sub_id`` or subject.
    """
    issuer = _string(payload, "iss", required=True)
    jti = _string(payload, "jti", required=True)
    iat = numeric_date(payload, "iat")
    if iat is None:
        raise InvalidRequest("the iat claim is required")
    assert issuer is not None and jti is not None
    audience = audience_of(payload)
    txn = _string(payload, "txn", required=False)
    events = event_map(payload)
    raw_sub_id = payload.get("sub_id")
    top = None if raw_sub_id is None else parse_subject(raw_sub_id, legacy=legacy, where="sub_id")
    sub_id = raw_sub_id if isinstance(raw_sub_id, dict) else None

    out: list[SecurityEvent] = []
    for uri, body in events.items():
        claims = dict(body)
        in_event = claims.pop("subject", None)
        subject: Subject
        if in_event is not None:
            subject = parse_subject(
                in_event, legacy=legacy, where=f"events[{excerpt(uri)}].subject"
            )
        elif top is not None:
            subject = top
        elif legacy and isinstance(payload.get("sub"), str) and payload["sub"]:
            subject = IssSubSubject(iss=issuer, sub=payload["sub"])
        elif legacy and event_name(uri) == "verification":
            subject = OpaqueSubject(id=issuer)
        else:
            raise InvalidRequest(
                f"event {excerpt(uri)} has no subject: no subject member and no sub_id claim"
            )
        out.append(
            SecurityEvent(
                issuer=issuer,
                jti=jti,
                iat=iat,
                audience=audience,
                txn=txn,
                event_type=uri,
                event_name=event_name(uri),
                subject=subject,
                claims=claims,
                sub_id=sub_id,
            )
        )
    return tuple(out)
