"""Okta System Log ``LogEvent`` records -> AuditEvent.

Sources (Okta developer documentation):

* LogEvent object — https://developer.okta.com/docs/reference/api/system-log/#logevent-object :
  ``uuid``, ``published``, ``eventType``, ``actor`` {id, type, alternateId, displayName},
  ``client`` {id — "for OAuth requests, the ID of the OAuth client making the request",
  ipAddress, userAgent.rawUserAgent}, ``outcome`` {result: SUCCESS, FAILURE, SKIPPED,
  ALLOW, DENY, CHALLENGE, UNKNOWN; reason}, ``target[]`` {id, type, alternateId,
  detailEntry}, ``authenticationContext.externalSessionId``, ``securityContext``
  {asNumber, asOrg, isp, domain, isProxy}, ``debugContext.debugData`` (grantType,
  grantedScopes, requestedScopes, requestUri — "not a data contract but a debugging aid",
  so every read of it is optional), ``transaction.id``.
* Event types — https://developer.okta.com/docs/reference/api/event-types/ :
  ``app.oauth2.as.token.grant.{access_token,id_token,refresh_token}`` (custom authorization
  server; ``app.oauth2.token.grant.*`` on the org server; the bare ``….token.grant`` is
  the failure variant), ``app.oauth2.as.token.revoke``, ``user.session.context.change``,
  ``user.risk.change``.
* Refresh token reuse —
  https://developer.okta.com/docs/guides/refresh-tokens/main/#refresh-token-reuse-detection :
  "Okta fires … ``app.oauth2.as.token.detect_reuse`` for custom authorization servers,
  ``app.oauth2.token.detect_reuse`` for the org authorization server", and on reuse
  "invalidates the most recently issued refresh token and all access tokens issued since
  the user authenticated".

Mapping:

=====================================  ===================================================
eventType                              AuditEvent
=====================================  ===================================================
``app.oauth2[.as].token.grant.*``      ``token.refreshed`` when ``debugData.grantType`` is
                                       ``refresh_token``, else ``token.issued``;
                                       ``auth.failed`` when the outcome is FAILURE/DENY
                                       (always for the bare ``….token.grant``)
``app.oauth2[.as].token.detect_reuse`` ``auth.failed``, outcome failure,
                                       ``attributes.reason = "refresh_token_reused"``,
                                       ``attributes.vendor = "okta"`` (IdP-reported reuse,
                                       see ``detectors.refresh_reuse``)
``app.oauth2[.as].token.revoke``       ``token.revoked``
``user.session.context.change``,       context, not a token fact: mapped to the actions in
``user.risk.change``                   ``PROPOSED_CONTEXT_ACTIONS`` once the AuditEvent
                                       action set has them, ignored (None) until then —
                                       no current action fits (a risk change is neither a
                                       login nor a session start, and ``ssf.*`` is for
                                       verified SETs only)
any other eventType                    ignored (None): a LogEvent we do not watch
=====================================  ===================================================

Fields: ``published`` → time; ``uuid`` → id (``okta:<uuid>``); actor of type ``User`` (or
else the first ``User`` target) → user (its ``alternateId``, the login, else its id);
``client.id`` (else a client-typed actor, else the ``AppInstance`` target) → client_id;
``client.ipAddress`` → source.ip; ``client.userAgent.rawUserAgent`` → source.user_agent;
``securityContext.asNumber`` → source.asn; ``outcome.result`` FAILURE/DENY → failure;
``debugData.grantedScopes`` (else ``scope``, else ``requestedScopes``) → scopes;
``authenticationContext.externalSessionId`` → attributes.session_id; grantType,
requestUri, transaction id and outcome reason → attributes; the whole record, bounded and
redacted → ``attributes.okta``.

Tokens: the ``target[]`` entries typed ``access_token`` / ``refresh_token`` / ``id_token``
give the token id (an Okta token id such as ``AT.…``, never the token; a raw value would be
hashed by ``AuditEvent`` anyway). Okta logs neither a family nor the presented refresh
token, but documents its reuse response as scoped to "tokens issued since the user
authenticated" for the client — so for refresh-token events the family is
``<client_id>/<externalSessionId>``, and a reuse event whose record names no refresh token
uses the family itself as the presented token.

Tenant: the tenant configured for the source (the HEC token's, ``?tenant=``, or
``ingest.default_tenant``) — the Okta org names the IdP, not our tenant; else a top-level
``org`` a forwarder added (e.g. ``acme.okta.com``); refused when neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ingest.event import is_known_action
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

#: Proposed actions for Okta context events; used only once ``is_known_action`` accepts
#: them (``ingest.event.ACTIONS`` is owned elsewhere).
PROPOSED_CONTEXT_ACTIONS: Mapping[str, str] = {
    "user.session.context.change": "session.context_changed",
    "user.risk.change": "risk.changed",
}

_GRANT = ("app.oauth2.as.token.grant", "app.oauth2.token.grant")
_REUSE = frozenset({"app.oauth2.as.token.detect_reuse", "app.oauth2.token.detect_reuse"})
_REVOKE = frozenset({"app.oauth2.as.token.revoke", "app.oauth2.token.revoke"})
_CLIENT_ACTORS = frozenset(
    {"publicclientapp", "publicclientappentity", "appinstance", "client", "clientapp"}
)
_TOKEN_TARGETS = {
    "accesstoken": "access_token",
    "refreshtoken": "refresh_token",
    "idtoken": "id_token",
    "authorizationcode": "authorization_code",
}
_REFRESH = "refresh_token"
_ISSUED = frozenset({"access_token", "refresh_token", "id_token"})
_FAILED = frozenset({"FAILURE", "DENY"})
_LETTERS = re.compile(r"[^a-z]")


class OktaNormalizer:
    """``format=okta``: Okta System Log LogEvents."""

    name = "okta"

    def __init__(self, context_actions: Mapping[str, str] | None = None) -> None:
        self.context_actions = dict(
            PROPOSED_CONTEXT_ACTIONS if context_actions is None else context_actions
        )

    def matches(self, record: Mapping[str, Any]) -> bool:
        return (
            isinstance(record, Mapping)
            and isinstance(record.get("eventType"), str)
            and isinstance(record.get("published"), str)
        )

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        event_type = required_text(record, "eventType")
        published = required_text(record, "published")
        kind = "context" if event_type in self.context_actions else _kind_of(event_type)
        if kind is None:
            return None
        context_action: str | None = None
        if kind == "context":
            context_action = self.context_actions.get(event_type)
            if context_action is None or not is_known_action(context_action):
                return None

        for key in ("actor", "client", "outcome", "debugContext", "securityContext"):
            if record.get(key) is not None and obj(record[key]) is None:
                raise NormalizeError(f"{key}: expected an object", code="bad_field")
        raw_targets = record.get("target")
        if raw_targets is not None and not isinstance(raw_targets, list):
            raise NormalizeError("target: expected an array", code="bad_field")
        targets = [t for t in raw_targets or () if isinstance(t, Mapping)]

        debug = obj(dig(record, "debugContext", "debugData")) or {}
        result = text(dig(record, "outcome", "result"))
        failed = result is not None and result.upper() in _FAILED
        grant_type = text(debug.get("grantType"))
        session = text(dig(record, "authenticationContext", "externalSessionId"))
        client_id = _client_of(record, targets)
        tokens = _tokens_of(targets)

        attributes: dict[str, Any] = {
            "vendor": "okta",
            "event_type": event_type,
            "session_id": session,
            "grant_type": grant_type,
            "request_uri": text(debug.get("requestUri")),
            "transaction_id": text(dig(record, "transaction", "id")),
            "outcome_result": result,
            "outcome_reason": text(dig(record, "outcome", "reason")),
        }
        family = f"{client_id}/{session}" if client_id and session else None
        token: dict[str, Any] | None = None

        if kind == "grant":
            suffix = event_type.rsplit(".", 1)[-1]
            issued = suffix if suffix in _ISSUED and event_type not in _GRANT else None
            refresh = grant_type == "refresh_token"
            if event_type in _GRANT or failed:
                action, failed = "auth.failed", True
                token_type = "refresh_token" if refresh else None
                token = {"type": token_type, "family_id": family if refresh else None}
            else:
                action = "token.refreshed" if refresh else "token.issued"
                token_type = issued or next(iter(tokens), None)
                token = {
                    "id": tokens.get(token_type) if token_type else None,
                    "type": token_type,
                    "family_id": family if (refresh or token_type == _REFRESH) else None,
                }
        elif kind == "reuse":
            action, failed = "auth.failed", True
            attributes["reason"] = IDP_REUSE_REASON
            presented = tokens.get("refresh_token") or family
            if presented is not None:
                token = {"parent_id": presented, "family_id": family, "type": "refresh_token"}
        elif kind == "revoke":
            action = "token.revoked"
            token_type = next(iter(tokens), None)
            if token_type is not None:
                token = {
                    "id": tokens[token_type],
                    "type": token_type,
                    "family_id": family if token_type == _REFRESH else None,
                }
        else:
            assert context_action is not None
            action = context_action
            attributes["risk"] = text(debug.get("risk"))

        attributes["okta"] = bounded(record)
        uuid = text(record.get("uuid"))
        scopes = (
            scope_list(debug.get("grantedScopes"))
            or scope_list(debug.get("scope"))
            or scope_list(debug.get("requestedScopes"))
        )
        source = {
            "ip": text(dig(record, "client", "ipAddress")),
            "asn": integer(dig(record, "securityContext", "asNumber")),
            "user_agent": text(dig(record, "client", "userAgent", "rawUserAgent")),
        }
        return compact(
            {
                "id": f"okta:{uuid}" if uuid else None,
                "time": published,
                "tenant": pick_tenant(
                    text(record.get("org")), tenant, prefer_record=False, where="org"
                ),
                "action": action,
                "user": _user_of(record, targets),
                "client_id": client_id,
                "scopes": scopes,
                "token": compact(token) if token else None,
                "source": source,
                "outcome": "failure" if failed else "success",
                "attributes": compact(attributes),
            }
        )


def _kind_of(event_type: str) -> str | None:
    if event_type in _REUSE:
        return "reuse"
    if event_type in _REVOKE:
        return "revoke"
    if any(event_type == p or event_type.startswith(p + ".") for p in _GRANT):
        return "grant"
    return None


def _type_of(entry: Mapping[str, Any]) -> str:
    value = entry.get("type")
    return _LETTERS.sub("", value.lower()) if isinstance(value, str) else ""


def _client_of(record: Mapping[str, Any], targets: list[Mapping[str, Any]]) -> str | None:
    found = text(dig(record, "client", "id"))
    if found:
        return found
    actor = obj(record.get("actor"))
    if actor is not None and _type_of(actor) in _CLIENT_ACTORS:
        found = text(actor.get("id"))
        if found:
            return found
    for target in targets:
        if _type_of(target) == "appinstance":
            found = text(target.get("id"))
            if found:
                return found
    return None


def _user_of(record: Mapping[str, Any], targets: list[Mapping[str, Any]]) -> str | None:
    actor = obj(record.get("actor"))
    candidates = [actor] if actor is not None and _type_of(actor) == "user" else []
    candidates += [t for t in targets if _type_of(t) == "user"]
    for entry in candidates:
        found = text(entry.get("alternateId")) or text(entry.get("id"))
        if found:
            return found
    return None


def _tokens_of(targets: list[Mapping[str, Any]]) -> dict[str, str]:
    """Token ids by token type, in target order (first of each type wins)."""
    out: dict[str, str] = {}
    for target in targets:
        kind = _TOKEN_TARGETS.get(_type_of(target))
        token_id = text(target.get("id"))
        if kind is not None and token_id is not None and kind not in out:
            out[kind] = token_id
    return out
