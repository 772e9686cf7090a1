"""Verified Shared Signals -> AuditEvents (DESIGN.md, "One path for every signal").

A verified SET event (``ssf.SecurityEvent``) becomes an AuditEvent with action
``ssf.<event-name>`` (``ssf.session_revoked``, ``ssf.account_disabled``, …); the ``signal``
detector and the policy act on it like on any other event.

Subjects map to our entities by a per-transmitter ``SubjectMapping``:

* a simple subject (RFC 9493 §3) names the user — ``email``, ``iss_sub`` (its ``sub``),
  ``opaque`` (its ``id``), ``account`` (its URI without ``acct:``), ``phone_number``, ``did``,
  ``uri``; ``aliases`` use their first identifier that maps — except ``jwt_id`` (RFC 9493
  §3.2.8) and ``saml_assertion_id``, which name a token: ``token.id``, so the policy revokes
  that token's family;
* an SSF complex subject (SSF 1.0 §3.3) maps member by member: ``user`` → user, ``session``
  → ``attributes.session_id``, ``device`` → ``attributes.device_id``, ``application`` →
  ``client_id`` (and ``agent``), ``tenant`` → the tenant when the mapping says so, ``group``
  and ``org_unit`` kept as attributes.

The event's own claims (``reason_admin``, ``current_status``, ``event_timestamp``, …) are
kept under ``attributes.claims``; the SET's issuer, jti, txn, event type URI and subject
under ``attributes.ssf``. The event time is the CAEP ``event_timestamp`` when present
(CAEP 1.0 §2), else the SET's ``iat``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ssf import (
    AccountSubject,
    AliasesSubject,
    ComplexSubject,
    DidSubject,
    EmailSubject,
    IssSubSubject,
    JwtIdSubject,
    OpaqueSubject,
    PhoneNumberSubject,
    SamlAssertionIdSubject,
    SecurityEvent,
    SubjectIdentifier,
    UriSubject,
)

#: Events that are about the stream itself, not about anyone's tokens.
STREAM_EVENTS = frozenset({"verification", "stream_updated"})


@dataclass(frozen=True, slots=True)
class SubjectMapping:
    """How one transmitter's subjects name our entities (``[ssf.transmitters.mapping]``).

    ``tenant``: the tenant its signals belong to. ``tenant_from_subject``: take the tenant
    from a complex subject's ``tenant`` member instead, when present. ``application_as``:
    whether an ``application`` member names the ``client`` (default), the ``agent``, or both.
    """

    tenant: str = "default"
    tenant_from_subject: bool = False
    application_as: str = "both"

    def __post_init__(self) -> None:
        if self.application_as not in {"client", "agent", "both"}:
            raise ValueError("application_as must be client, agent or both")
        if not self.tenant:
            raise ValueError("tenant must not be empty")


def identifier_of(subject: SubjectIdentifier) -> str | None:
    """The identifier a simple subject carries (RFC 9493 §3.2), as our entities spell it."""
    match subject:
        case EmailSubject():
            return subject.email.lower()
        case IssSubSubject():
            return subject.sub
        case OpaqueSubject():
            return subject.id
        case AccountSubject():
            return subject.uri.removeprefix("acct:")
        case PhoneNumberSubject():
            return subject.phone_number
        case DidSubject():
            return subject.url
        case UriSubject():
            return subject.uri
        case JwtIdSubject():
            return subject.jti
        case SamlAssertionIdSubject():
            return subject.assertion_id
        case AliasesSubject():
            for alias in subject.identifiers:
                found = identifier_of(alias)
                if found is not None:
                    return found
            return None
    return None


def _is_token(subject: SubjectIdentifier) -> bool:
    return isinstance(subject, JwtIdSubject | SamlAssertionIdSubject)


def to_audit_event(event: SecurityEvent, mapping: SubjectMapping) -> dict[str, Any]:
    """The wire-schema dict of the AuditEvent for one verified SET event."""
    name = event.event_name or "unknown"
    out: dict[str, Any] = {
        "id": _event_id(event),
        "time": _event_time(event),
        "tenant": mapping.tenant,
        "action": f"ssf.{name}",
    }
    attributes: dict[str, Any] = {
        "ssf": {
            "issuer": event.issuer,
            "jti": event.jti,
            "txn": event.txn,
            "event_type": event.event_type,
            "subject": event.subject.to_wire(),
        },
        "claims": dict(event.claims),
    }
    subject = event.subject
    members: Mapping[str, SubjectIdentifier]
    if isinstance(subject, ComplexSubject):
        members = subject.members()
    elif _is_token(subject):
        members = {"token": subject}
    else:
        members = {"user": subject}
    for role, member in members.items():
        value = identifier_of(member)
        if value is None:
            continue
        if role == "user":
            out["user"] = value
        elif role == "token" or _is_token(member):
            out["token"] = {"id": value}
        elif role == "session":
            attributes["session_id"] = value
        elif role == "device":
            attributes["device_id"] = value
        elif role == "application":
            if mapping.application_as in {"client", "both"}:
                out["client_id"] = value
            if mapping.application_as in {"agent", "both"}:
                out["agent"] = value
        elif role == "tenant":
            if mapping.tenant_from_subject:
                out["tenant"] = value
            attributes["subject_tenant"] = value
        else:
            attributes[f"subject_{role}"] = value
    out["attributes"] = attributes
    return out


def _event_id(event: SecurityEvent) -> str:
    digest = hashlib.sha256(f"{event.issuer}\0{event.jti}\0{event.event_type}".encode())
    return "set-" + digest.hexdigest()[:24]


def _event_time(event: SecurityEvent) -> str:
    stamp = event.claims.get("event_timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and stamp > 0:
        try:
            return datetime.fromtimestamp(stamp, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            pass
    return event.iat.isoformat()
