"""Keycloak user events and admin events, as JSON -> AuditEvent.

Sources (Keycloak documentation and source):

* ``EventRepresentation`` —
  https://www.keycloak.org/docs-api/latest/rest-api/index.html#EventRepresentation :
  ``id`` (recent versions), ``time`` (epoch **milliseconds**), ``type``, ``realmId``,
  ``clientId``, ``userId``, ``sessionId``, ``ipAddress``, ``error``, ``details`` (string
  map). This is what ``GET /admin/realms/{realm}/events`` returns and what JSON event
  listeners log (they may add ``realmName``, ``timestamp``, ``loggerName``).
* ``AdminEventRepresentation`` — same page, #AdminEventRepresentation: ``time``,
  ``realmId``, ``authDetails`` {realmId, clientId, userId, ipAddress} (the admin),
  ``operationType`` (CREATE, UPDATE, DELETE, ACTION), ``resourceType``, ``resourcePath``,
  ``representation`` (a JSON string; dropped here: it can hold client secrets), ``error``.
* Event types — https://www.keycloak.org/docs/latest/server_admin/#event-types ;
  detail keys — ``org.keycloak.events.Details``: ``token_id``, ``refresh_token_id``,
  ``updated_refresh_token_id``, ``refresh_token_type``, ``grant_type``, ``scope``,
  ``reason``, ``username``.
* Refresh token reuse — realm settings "Revoke Refresh Token" / "Refresh Token Max Reuse"
  (https://www.keycloak.org/docs/latest/server_admin/#_timeouts); past the limit
  ``TokenManager`` refuses with ``invalid_grant`` "Maximum allowed refresh token reuse
  exceeded" and the token endpoint records ``REFRESH_TOKEN_ERROR`` with error
  ``invalid_token`` and that text as ``details.reason``.

User events (``*_ERROR`` → outcome failure):

=======================================  ==============================================
type                                     AuditEvent
=======================================  ==============================================
REFRESH_TOKEN                            ``token.refreshed``: parent_id
                                         ``refresh_token_id``, id
                                         ``updated_refresh_token_id`` (with rotation)
REFRESH_TOKEN_ERROR                      ``auth.failed``; with reason "…refresh token
                                         reuse…" also ``attributes.reason =
                                         "refresh_token_reused"``, ``vendor =
                                         "keycloak"`` (IdP-reported reuse)
CODE_TO_TOKEN, TOKEN_EXCHANGE            ``token.issued`` (the refresh token when one
                                         was issued, else the access token)
CLIENT_LOGIN                             ``token.issued`` to the client itself (agent =
                                         ``clientId``)
LOGIN / LOGOUT                           ``session.started`` / ``session.ended``
INTROSPECT_TOKEN                         ``token.introspected``
REVOKE_GRANT                             ``token.revoked``
CODE_TO_TOKEN_ERROR, CLIENT_LOGIN_ERROR,  ``auth.failed``
LOGIN_ERROR, TOKEN_EXCHANGE_ERROR
LOGOUT_ERROR, INTROSPECT_TOKEN_ERROR,    the same action as the success type, outcome
REVOKE_GRANT_ERROR                       failure
any other type                           ignored (None)
=======================================  ==============================================

Admin events: ``DELETE`` of ``sessions/<id>`` (USER_SESSION) and ``ACTION`` on
``users/<id>/logout`` → ``session.ended``; ``ACTION`` on ``logout-all`` /
``push-revocation`` → ``session.ended`` realm-wide (no user); ``DELETE`` of
``users/<id>/consents/<client>`` → ``token.revoked`` for that user and client; any
other admin event is ignored. The admin who acted goes to ``attributes.admin``; it is not
the token holder, so it sets neither user nor source.

Fields: ``time`` (ms) → time; ``id`` → id (``keycloak:<id>``); ``clientId`` →
client_id; ``userId`` → user (``details.username`` to attributes); ``ipAddress`` →
source.ip; ``details.scope`` → scopes; ``sessionId`` → attributes.session_id; the token
family of a refresh token is its client session, ``<sessionId>/<clientId>`` (what Keycloak
invalidates on reuse); ``error`` and the record (bounded, redacted) → attributes.

Tenant: the configured tenant, else ``realmId`` (else ``realmName``); refused when
neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ingest.normalizers._fields import (
    bounded,
    compact,
    epoch_ms,
    obj,
    pick_tenant,
    required_text,
    scope_list,
    text,
)
from ingest.normalizers.base import NormalizeError

IDP_REUSE_REASON = "refresh_token_reused"
_REUSE_TEXT = "refresh token reuse"

#: user event type -> (action, token kind)
_USER_EVENTS: Mapping[str, tuple[str, str | None]] = {
    "REFRESH_TOKEN": ("token.refreshed", "refresh"),
    "CODE_TO_TOKEN": ("token.issued", "issued"),
    "TOKEN_EXCHANGE": ("token.issued", "issued"),
    "CLIENT_LOGIN": ("token.issued", "access"),
    "LOGIN": ("session.started", None),
    "LOGOUT": ("session.ended", None),
    "INTROSPECT_TOKEN": ("token.introspected", "access"),
    "REVOKE_GRANT": ("token.revoked", "access"),
}
_ERRORS_AS_AUTH_FAILED = frozenset(
    {"REFRESH_TOKEN", "CODE_TO_TOKEN", "CLIENT_LOGIN", "LOGIN", "TOKEN_EXCHANGE"}
)
_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_USER_LOGOUT = re.compile(r"users/([^/]+)/logout")
_CONSENT = re.compile(r"users/([^/]+)/consents/([^/]+)")
_SESSION = re.compile(r"sessions/([^/]+)")


class KeycloakNormalizer:
    """``format=keycloak``: Keycloak event and admin event representations."""

    name = "keycloak"

    def matches(self, record: Mapping[str, Any]) -> bool:
        if not isinstance(record, Mapping) or not _is_ms(record.get("time")):
            return False
        if isinstance(record.get("operationType"), str):
            return isinstance(record.get("resourcePath") or record.get("resourceType"), str)
        kind = record.get("type")
        return (
            isinstance(kind, str)
            and _TYPE.fullmatch(kind) is not None
            and ("realmId" in record or "realmName" in record)
        )

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        if "operationType" in record:
            return self._admin(record, tenant)
        kind = required_text(record, "type")
        failed = kind.endswith("_ERROR")
        base = kind.removesuffix("_ERROR") if failed else kind
        mapped = _USER_EVENTS.get(base)
        if mapped is None:
            return None
        action, shape = mapped
        if failed and base in _ERRORS_AS_AUTH_FAILED:
            action = "auth.failed"

        details = _details(record)
        client_id = text(record.get("clientId"))
        session = text(record.get("sessionId"))
        family = f"{session}/{client_id}" if session and client_id else None
        reason = text(details.get("reason"))
        attributes: dict[str, Any] = {
            "vendor": "keycloak",
            "event_type": kind,
            "session_id": session,
            "error": text(record.get("error")),
            "error_reason": reason,
            "username": text(details.get("username")),
            "grant_type": text(details.get("grant_type")),
            "realm_name": text(record.get("realmName")),
        }

        token: dict[str, Any] | None = None
        refresh_id = text(details.get("refresh_token_id"))
        access_id = text(details.get("token_id"))
        if shape == "refresh":
            reused = failed and any(
                _REUSE_TEXT in (v or "").lower()
                for v in (reason, text(details.get("error_description")))
            )
            if reused:
                attributes["reason"] = IDP_REUSE_REASON
            presented = refresh_id or (family if reused else None)
            token = {
                "parent_id": presented,
                "id": None if failed else text(details.get("updated_refresh_token_id")),
                "family_id": family,
                "type": "refresh_token",
            }
            attributes["access_token_id"] = access_id
        elif shape == "issued" and refresh_id and not failed:
            token = {"id": refresh_id, "family_id": family, "type": "refresh_token"}
            attributes["access_token_id"] = access_id
        elif shape in ("issued", "access") and access_id:
            token = {"id": access_id, "type": "access_token"}
        elif base == "CODE_TO_TOKEN" and failed:
            token = {"type": "authorization_code"}

        attributes["keycloak"] = bounded(record)
        return compact(
            {
                "id": _event_id(record),
                "time": epoch_ms(record.get("time"), "time"),
                "tenant": _tenant(record, tenant),
                "action": action,
                "user": text(record.get("userId")),
                "agent": client_id if base == "CLIENT_LOGIN" else None,
                "client_id": client_id,
                "scopes": scope_list(details.get("scope")),
                "token": token,
                "source": {"ip": text(record.get("ipAddress"))},
                "outcome": "failure" if failed else "success",
                "attributes": compact(attributes),
            }
        )

    def _admin(self, record: Mapping[str, Any], tenant: str | None) -> dict[str, Any] | None:
        operation = required_text(record, "operationType")
        path = text(record.get("resourcePath")) or ""
        resource = text(record.get("resourceType")) or ""
        when = epoch_ms(record.get("time"), "time")
        auth = record.get("authDetails")
        if auth is not None and obj(auth) is None:
            raise NormalizeError("authDetails: expected an object", code="bad_field")
        admin = obj(auth) or {}

        user: str | None = None
        client_id: str | None = None
        session: str | None = None
        realm_wide = False
        if operation == "DELETE" and (m := _CONSENT.fullmatch(path)):
            action, user, client_id = "token.revoked", m.group(1), m.group(2)
        elif operation == "DELETE" and (m := _SESSION.fullmatch(path)):
            action, session = "session.ended", m.group(1)
        elif operation == "ACTION" and (m := _USER_LOGOUT.fullmatch(path)):
            action, user = "session.ended", m.group(1)
        elif operation == "ACTION" and path in ("logout-all", "push-revocation"):
            action, realm_wide = "session.ended", True
        else:
            return None

        error = text(record.get("error"))
        attributes = {
            "vendor": "keycloak",
            "event_type": f"ADMIN_{operation}",
            "resource_type": resource or None,
            "resource_path": path,
            "session_id": session,
            "scope": "realm" if realm_wide else None,
            "error": error,
            "admin": compact(
                {
                    "realm_id": text(admin.get("realmId")),
                    "client_id": text(admin.get("clientId")),
                    "user_id": text(admin.get("userId")),
                    "ip": text(admin.get("ipAddress")),
                }
            ),
            "keycloak": bounded({k: v for k, v in record.items() if k != "representation"}),
        }
        return compact(
            {
                "id": _event_id(record),
                "time": when,
                "tenant": _tenant(record, tenant),
                "action": action,
                "user": user,
                "client_id": client_id,
                "outcome": "failure" if error else "success",
                "attributes": compact(attributes),
            }
        )


def _is_ms(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _details(record: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = record.get("details")
    if raw is None:
        return {}
    details = obj(raw)
    if details is None:
        raise NormalizeError("details: expected an object", code="bad_field")
    return details


def _event_id(record: Mapping[str, Any]) -> str | None:
    found = text(record.get("id"))
    return f"keycloak:{found}" if found else None


def _tenant(record: Mapping[str, Any], configured: str | None) -> str:
    own = text(record.get("realmId")) or text(record.get("realmName"))
    return pick_tenant(own, configured, prefer_record=False, where="realmId")
