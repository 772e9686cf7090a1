"""Auth0 tenant log events -> AuditEvent.

Sources (Auth0 documentation):

* Log event type codes — https://auth0.com/docs/deploy-monitor/logs/log-event-type-codes
* Per-type schemas — https://auth0.com/docs/tenant-logs/auth-token-exchange-success/sertft,
  …/auth-token-exchange-fail/fertft, …/auth-token-exchange-fail/ferrt ("Failed Exchange of
  Rotating Refresh Token. This could occur when reuse is detected"), …/seacft, …/feacft,
  and scoa; machine-readable in https://github.com/auth0/auth0-log-schemas
  (``schemas/log-types/<type>.schema.json``): ``date``, ``type``, ``log_id``,
  ``tenant_name``, ``client_id``, ``client_name``, ``ip``, ``client_ip``, ``user_agent``,
  ``user_id``, ``user_name``, ``audience``, ``scope`` (array or space-separated string),
  ``description``, and ``details`` — for ``sertft`` ``familyId``, ``tokenCounter``,
  ``access_token_jti``, ``refresh_token.session_id``; for ``ferrt`` ``familyId``,
  ``tokenCounter`` (the token presented) and ``latestCounter`` (the newest of the family);
  for ``fertft`` ``failure_reason``; for ``seacft`` ``access_token_jti``.
* Refresh token rotation —
  https://auth0.com/docs/secure/tokens/refresh-tokens/refresh-token-rotation : a reused
  token invalidates its family; the log reads "Reused rotating refresh token detected,
  revoked the family" (Auth0 support article on ``fertft`` "Token could not be decoded or
  is missing in DB", community.auth0.com/t/151632), and later exchanges of that family's
  tokens fail as ``fertft``.
* Agent ID in tenant logs — https://auth0.com/docs/ai-agents-mcp/agent-as-principal/tenant-logs :
  "Auth0 includes both the ``agent_id`` and ``external_agent_id``, if set, in the resulting
  tenant log entry" (client_credentials, refresh_token, OBO and login grants of agent-linked
  clients); ``external_agent_id``, when set, "replaces agent_id everywhere the agent
  identity appears".
* Custom-webhook log streams (https://auth0.com/docs/customize/log-streams) deliver each
  event wrapped as ``{"log_id": …, "data": {…}}`` (as Elastic's Auth0 integration receives
  them); ``GET /api/v2/logs`` returns the event itself. Both shapes are accepted.

Mapping (``type`` → action):

========  =====================================================  ==========================
type      meaning                                                AuditEvent
========  =====================================================  ==========================
sertft    Successful exchange of refresh token for access token  ``token.refreshed``
fertft    Failed exchange of refresh token for access token      ``auth.failed``
ferrt     Failed exchange of rotating refresh token (reuse)      ``auth.failed`` with
                                                                 ``attributes.reason =
                                                                 "refresh_token_reused"``,
                                                                 ``vendor = "auth0"``
seacft    Successful exchange of authorization code              ``token.issued``
feacft    Failed exchange of authorization code                  ``auth.failed``
scoa      Successful cross-origin authentication                 ``auth.succeeded``
fcoa      Failed cross-origin authentication                     ``auth.failed``
other     any other log event                                    ignored (None)
========  =====================================================  ==========================

Fields: ``date`` → time; ``log_id`` → id (``auth0:<log_id>``); the configured tenant
(else ``tenant_name``; refused when neither); ``client_id``; ``user_id`` (stable
across event types; ``user_name`` is only there "when available") else ``user_name`` →
user, with ``user_name`` kept in attributes; ``ip`` (else
``client_ip``) → source.ip; ``user_agent`` → source.user_agent; ``audience``; ``scope`` →
scopes; ``details.session_id`` / ``details.refresh_token.session_id`` →
attributes.session_id; ``client_name``, ``description``, ``details.failure_reason``,
``details.access_token_jti`` → attributes; the whole record, bounded and redacted →
``attributes.auth0``.

Agent: ``external_agent_id``, else ``agent_id`` (top level, as Auth0 logs them), else the
same two keys inside ``details`` (where a log-stream transform or an Action may have put
them); absent for flows that do not involve an Auth0 agent.

Tokens: Auth0 logs no refresh token id, only the rotation family and the counter, so a
presented refresh token is named ``<familyId>/<tokenCounter>`` (``ferrt`` and ``sertft``)
and the token a ``sertft`` issues ``<familyId>/<tokenCounter + 1>#<log_id>``. The log id
keeps apart two exchanges of the same counter (Auth0's rotation overlap period lets a
token be exchanged again, each time for a new token — exactly the replay the reuse
detector must see), while a redelivered log line keeps its id and stays a duplicate. The
schema does not say whether a success log's ``tokenCounter`` counts the presented or the
issued token; ``ferrt``'s counts the presented one and we read ``sertft`` the same way (an
off-by-one in that reading shifts every name of a family alike, so reuse is still seen).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.normalizers._fields import (
    bounded,
    compact,
    dig,
    integer,
    obj,
    pick_tenant,
    required_text,
    scope_list,
    text,
)
from ingest.normalizers.base import NormalizeError

IDP_REUSE_REASON = "refresh_token_reused"

#: type -> (action, outcome, token type)
_TYPES: Mapping[str, tuple[str, str, str | None]] = {
    "sertft": ("token.refreshed", "success", "refresh_token"),
    "fertft": ("auth.failed", "failure", "refresh_token"),
    "ferrt": ("auth.failed", "failure", "refresh_token"),
    "seacft": ("token.issued", "success", "access_token"),
    "feacft": ("auth.failed", "failure", "authorization_code"),
    "scoa": ("auth.succeeded", "success", None),
    "fcoa": ("auth.failed", "failure", None),
}


class Auth0Normalizer:
    """``format=auth0``: Auth0 tenant log events (flat, or wrapped by a log stream)."""

    name = "auth0"

    def matches(self, record: Mapping[str, Any]) -> bool:
        if not isinstance(record, Mapping):
            return False
        inner = obj(record.get("data"))
        event = inner if inner is not None and "log_id" in record else record
        return (
            isinstance(event.get("type"), str)
            and isinstance(event.get("date"), str)
            and ("log_id" in event or "log_id" in record or "tenant_name" in event)
        )

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        event = record
        inner = record.get("data")
        if "log_id" in record and inner is not None:
            if obj(inner) is None:
                raise NormalizeError("data: expected an object", code="bad_field")
            event = inner
        log_type = required_text(event, "type")
        date = required_text(event, "date")
        mapped = _TYPES.get(log_type)
        if mapped is None:
            return None
        action, outcome, token_type = mapped

        details_raw = event.get("details")
        if details_raw is not None and obj(details_raw) is None:
            raise NormalizeError("details: expected an object", code="bad_field")
        details = obj(details_raw) or {}
        log_id = text(event.get("log_id")) or text(record.get("log_id"))
        user_name = text(event.get("user_name"))

        attributes: dict[str, Any] = {
            "vendor": "auth0",
            "event_type": log_type,
            "session_id": text(details.get("session_id"))
            or text(dig(details, "refresh_token", "session_id")),
            "user_name": user_name,
            "client_name": text(event.get("client_name")),
            "description": text(event.get("description")),
            "failure_reason": text(details.get("failure_reason")),
            "access_token_jti": text(details.get("access_token_jti")),
        }
        token: dict[str, Any] | None = {"type": token_type} if token_type else None
        family = text(details.get("familyId"))
        counter = integer(details.get("tokenCounter"))
        if log_type == "ferrt":
            attributes["reason"] = IDP_REUSE_REASON
            attributes["latest_counter"] = integer(details.get("latestCounter"))
            if family is not None:
                presented = f"{family}/{counter}" if counter is not None else family
                token = {"parent_id": presented, "family_id": family, "type": token_type}
        elif log_type == "sertft" and family is not None:
            issued = f"{family}/{counter + 1}" if counter is not None else None
            token = {
                "parent_id": f"{family}/{counter}" if counter is not None else None,
                "id": f"{issued}#{log_id}" if issued and log_id else issued,
                "family_id": family,
                "type": token_type,
            }
        elif log_type == "seacft" and attributes["access_token_jti"]:
            token = {"id": attributes["access_token_jti"], "type": token_type}

        attributes["auth0"] = bounded(record)
        return compact(
            {
                "id": f"auth0:{log_id}" if log_id else None,
                "time": date,
                "tenant": pick_tenant(
                    text(event.get("tenant_name")), tenant, prefer_record=False, where="tenant_name"
                ),
                "action": action,
                "user": text(event.get("user_id")) or user_name,
                "agent": _agent_of(event, details),
                "client_id": text(event.get("client_id")),
                "audience": text(event.get("audience")),
                "scopes": scope_list(event.get("scope")),
                "token": token,
                "source": {
                    "ip": text(event.get("ip")) or text(event.get("client_ip")),
                    "user_agent": text(event.get("user_agent")),
                },
                "outcome": outcome,
                "attributes": compact(attributes),
            }
        )


def _agent_of(event: Mapping[str, Any], details: Mapping[str, Any]) -> str | None:
    for where in (event, details):
        found = text(where.get("external_agent_id")) or text(where.get("agent_id"))
        if found:
            return found
    return None
