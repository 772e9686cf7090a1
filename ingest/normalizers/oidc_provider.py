"""node ``oidc-provider`` events, as a log forwarder records them -> AuditEvent.

Sources:

* Events — https://github.com/panva/node-oidc-provider/blob/main/docs/events.md :
  ``grant.success (ctx)`` "with every successful grant request", ``grant.error (ctx,
  error)``, ``grant.revoked (ctx, grantId)`` "whenever tokens resulting from a single grant
  are about to be revoked", ``refresh_token.consumed (token)`` "whenever a refresh token
  is consumed", and the other ``*.saved`` / ``*.destroyed`` / ``*.error`` events.
* Token payload fields (``lib/models``): ``jti``, ``kind`` (``AccessToken``,
  ``RefreshToken``, ``ClientCredentials``, …), ``grantId``, ``clientId``, ``accountId``,
  ``sessionUid``, ``sid``, ``scope``, ``aud``, ``gty``, ``rotations``, ``iat``, ``exp``.
* Refresh grant — ``lib/actions/grants/refresh_token.js``: with rotation the presented
  token is consumed and kept in ``ctx.oidc.entities.RotatedRefreshToken`` and the new one
  is ``…entities.RefreshToken``; a token presented again after it was consumed makes the
  provider revoke the whole grant, emit ``grant.revoked`` and fail with ``invalid_grant``
  "refresh token already used".

oidc-provider emits events in-process; there is no wire format, so this is the JSON a
forwarder (an ``provider.on(name, …)`` listener writing one line per event) must send:

.. code-block:: json

    {
      "event": "grant.success",            // the event name, required
      "ts": "2026-11-23T08:00:00.123Z",    // RFC 3339, or epoch seconds, or epoch ms
      "tenant": "acme",                    // optional; else the configured tenant
      "issuer": "https://op.example",      // optional, kept as evidence
      "ctx": {                             // for (ctx, …) events
        "ip": "203.0.113.5",               // ctx.ip
        "userAgent": "crm-bot/1.4",        // ctx.get('user-agent')
        "params": {"grant_type": "refresh_token", "scope": "leads:read"},
        "client": {"clientId": "agent-crm"},
        "entities": {                      // ctx.oidc.entities, token payload fields only
          "RotatedRefreshToken": {"jti": "…", "kind": "RefreshToken", "grantId": "…"},
          "RefreshToken": {"jti": "…", "kind": "RefreshToken", "grantId": "…",
                           "accountId": "…", "sessionUid": "…", "scope": "…"},
          "AccessToken": {"jti": "…", "kind": "AccessToken", "aud": "…", "scope": "…"}
        }
      },
      "error": {"error": "invalid_grant", "error_description": "…"},  // grant.error
      "grantId": "…",                      // grant.revoked
      "token": {"jti": "…", "kind": "RefreshToken", "grantId": "…"}   // (token) events
    }

Never forward token *values*: only the payload fields above. Credential-named keys
(``refresh_token``, ``code``, ``client_secret``, …) are redacted from the evidence copy
anyway, because an opaque oidc-provider token does not look like a token.

Mapping:

======================  ===============================================================
event                   AuditEvent
======================  ===============================================================
grant.success           ``token.refreshed`` for ``grant_type=refresh_token`` (parent_id
                        = RotatedRefreshToken.jti, id = RefreshToken.jti; without
                        rotation parent_id = RefreshToken.jti), else ``token.issued``
                        (the refresh token when one was issued, else the access token)
grant.error             ``auth.failed``; "refresh token already used" also sets
                        ``attributes.reason = "refresh_token_reused"``, ``vendor =
                        "oidc-provider"`` (IdP-reported reuse)
grant.revoked           ``token.revoked`` of the family ``grantId``
refresh_token.consumed  ``token.refreshed`` with parent_id = jti and no successor (the
                        consumed token event carries none) — forward either this or
                        ``grant.success`` for refreshes, not both, or a refresh counts twice
other documented names  ignored (None)
======================  ===============================================================

A refresh token's family is its ``grantId``. ``accountId`` → user, ``clientId`` →
client_id, ``sessionUid`` → attributes.session_id, ``scope`` → scopes, ``aud`` (a single
string) → audience, ``ctx.ip`` / ``ctx.userAgent`` → source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.normalizers._fields import (
    SECRET_KEYS,
    bounded,
    compact,
    dig,
    obj,
    pick_tenant,
    required_text,
    scope_list,
    text,
)
from ingest.normalizers.base import NormalizeError

IDP_REUSE_REASON = "refresh_token_reused"
REUSE_DESCRIPTION = "refresh token already used"
_SECRET_KEYS = SECRET_KEYS | {"code"}

#: Every event name in docs/events.md; the mapped ones are handled, the rest ignored.
KNOWN_EVENTS = frozenset(
    {
        "access_token.destroyed",
        "access_token.saved",
        "authorization_code.consumed",
        "authorization_code.destroyed",
        "authorization_code.saved",
        "authorization.accepted",
        "authorization.error",
        "authorization.success",
        "backchannel.error",
        "backchannel.success",
        "jwks.error",
        "check_session_origin.error",
        "check_session.error",
        "client_credentials.destroyed",
        "client_credentials.saved",
        "device_code.consumed",
        "device_code.destroyed",
        "device_code.saved",
        "discovery.error",
        "end_session.error",
        "end_session.success",
        "grant.error",
        "grant.revoked",
        "grant.success",
        "initial_access_token.destroyed",
        "initial_access_token.saved",
        "interaction.destroyed",
        "interaction.ended",
        "interaction.saved",
        "interaction.started",
        "introspection.error",
        "replay_detection.destroyed",
        "replay_detection.saved",
        "pushed_authorization_request.error",
        "pushed_authorization_request.success",
        "pushed_authorization_request.destroyed",
        "pushed_authorization_request.saved",
        "refresh_token.consumed",
        "refresh_token.destroyed",
        "refresh_token.saved",
        "registration_access_token.destroyed",
        "registration_access_token.saved",
        "registration_create.error",
        "registration_create.success",
        "registration_delete.error",
        "registration_delete.success",
        "registration_read.error",
        "registration_update.error",
        "registration_update.success",
        "revocation.error",
        "server_error",
        "session.destroyed",
        "session.saved",
        "userinfo.error",
    }
)
_MAPPED = frozenset({"grant.success", "grant.error", "grant.revoked", "refresh_token.consumed"})


class OidcProviderNormalizer:
    """``format=oidc-provider``: node oidc-provider events, in the forwarder shape above."""

    name = "oidc-provider"

    def matches(self, record: Mapping[str, Any]) -> bool:
        return (
            isinstance(record, Mapping)
            and record.get("event") in KNOWN_EVENTS
            and ("ts" in record or "time" in record)
        )

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        name = required_text(record, "event")
        if name not in KNOWN_EVENTS:
            raise NormalizeError(
                f"event: {name[:60]!r} is not an oidc-provider event", code="bad_field"
            )
        when = _time(record)
        if name not in _MAPPED:
            return None
        ctx = _object(record, "ctx")
        entities = obj(ctx.get("entities")) or {}
        for key in ("RefreshToken", "RotatedRefreshToken", "AccessToken", "ClientCredentials"):
            if entities.get(key) is not None and obj(entities[key]) is None:
                raise NormalizeError(f"ctx.entities.{key}: expected an object", code="bad_field")
        rt = obj(entities.get("RefreshToken")) or {}
        rotated = obj(entities.get("RotatedRefreshToken")) or {}
        at = obj(entities.get("AccessToken")) or obj(entities.get("ClientCredentials")) or {}
        consumed = _object(record, "token") if name == "refresh_token.consumed" else {}
        params = obj(ctx.get("params")) or {}
        grant_type = text(params.get("grant_type"))
        holders = (consumed, rt, rotated, at)
        grant_id = text(record.get("grantId")) or _first(holders, "grantId")

        attributes: dict[str, Any] = {
            "vendor": "oidc-provider",
            "event_type": name,
            "session_id": _first(holders, "sessionUid"),
            "grant_type": grant_type,
            "grant_id": grant_id,
            "issuer": text(record.get("issuer")),
        }
        failed = False
        token: dict[str, Any] | None = None
        if name == "grant.success":
            if grant_type == "refresh_token":
                action = "token.refreshed"
                token = {
                    "parent_id": text(rotated.get("jti")) or text(rt.get("jti")),
                    "id": text(rt.get("jti")) if rotated else None,
                    "family_id": grant_id,
                    "type": "refresh_token",
                }
            else:
                action = "token.issued"
                rt_id, at_id = text(rt.get("jti")), text(at.get("jti"))
                if rt_id:
                    token = {"id": rt_id, "family_id": grant_id, "type": "refresh_token"}
                elif at_id:
                    token = {"id": at_id, "type": "access_token"}
        elif name == "grant.error":
            action, failed = "auth.failed", True
            error = _object(record, "error")
            description = text(error.get("error_description")) or text(error.get("message"))
            attributes["error"] = text(error.get("error"))
            attributes["error_description"] = description
            reused = (description or "").lower() == REUSE_DESCRIPTION
            if reused:
                attributes["reason"] = IDP_REUSE_REASON
            if reused or grant_type == "refresh_token" or rt:
                presented = text(rt.get("jti")) or (grant_id if reused else None)
                token = {"parent_id": presented, "family_id": grant_id, "type": "refresh_token"}
        elif name == "grant.revoked":
            action = "token.revoked"
            if grant_id is None:
                raise NormalizeError("grantId: required for grant.revoked", code="missing_field")
            token = {"family_id": grant_id}
        else:  # refresh_token.consumed
            action = "token.refreshed"
            jti = text(consumed.get("jti"))
            if jti is None:
                raise NormalizeError("token.jti: required", code="missing_field")
            token = {"parent_id": jti, "family_id": grant_id, "type": "refresh_token"}

        attributes["oidc_provider"] = bounded(record, secret_keys=_SECRET_KEYS)
        audience = text(at.get("aud"))
        return compact(
            {
                "time": when,
                "tenant": pick_tenant(
                    text(record.get("tenant")), tenant, prefer_record=True, where="tenant"
                ),
                "action": action,
                "user": _first(holders, "accountId") or text(dig(entities, "Account", "accountId")),
                "client_id": text(dig(ctx, "client", "clientId")) or _first(holders, "clientId"),
                "audience": audience,
                "scopes": scope_list(at.get("scope"))
                or scope_list(params.get("scope"))
                or scope_list(rt.get("scope"))
                or scope_list(consumed.get("scope")),
                "token": token,
                "source": {"ip": text(ctx.get("ip")), "user_agent": text(ctx.get("userAgent"))},
                "outcome": "failure" if failed else "success",
                "attributes": compact(attributes),
            }
        )


def _object(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    raw = record.get(key)
    if raw is None:
        return {}
    found = obj(raw)
    if found is None:
        raise NormalizeError(f"{key}: expected an object", code="bad_field")
    return found


def _first(holders: tuple[Mapping[str, Any], ...], key: str) -> str | None:
    for holder in holders:
        found = text(holder.get(key))
        if found:
            return found
    return None


def _time(record: Mapping[str, Any]) -> str | float:
    value = record.get("ts", record.get("time"))
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value < 32_503_680_000_000:
            raise NormalizeError("ts: epoch time out of range", code="bad_field")
        return value / 1000.0 if value >= 100_000_000_000 else float(value)
    raise NormalizeError("ts: expected an RFC 3339 string or epoch seconds/ms", code="bad_field")
