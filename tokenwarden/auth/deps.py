"""Authentication and authorization as FastAPI dependencies (RFC 6750).

Credentials come in ``Authorization: Bearer <credential>`` (RFC 6750 §2.1) — an API key
(``twk_…``) or, with ``[auth.oidc]`` configured, a JWT — or in ``X-API-Key: <key>``.
A missing credential is ``401`` with ``WWW-Authenticate: Bearer realm="tokenwarden"``
(RFC 6750 §3: no error code when the request carried no credentials, §3.1); a credential
that is not accepted is ``401`` with ``error="invalid_token"``, one opaque answer whatever
the reason (the reason is logged); a principal without the role or scope a route needs is
``403`` with ``error="insufficient_scope"`` (§3.1). Objects of another tenant are ``404``,
as if they did not exist (``visible``, ``tenant_filter``).

Routes declare what they need with the ``Viewer``, ``Responder``, ``Admin``, ``Ingest``
and ``MetricsReader`` annotations; each resolves to the ``Principal``. ``/v1/check``, the
gateways' hot path, calls ``principal_of`` and ``permitted`` itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tokenwarden.api.errors import ApiError
from tokenwarden.auth.api_keys import ApiKeyAuthenticator, looks_like_key
from tokenwarden.auth.bearer import BearerVerifier, InvalidToken
from tokenwarden.auth.principal import Principal, Role, Scope

log = structlog.get_logger("tokenwarden.auth")

REALM = 'Bearer realm="tokenwarden"'
API_KEY_HEADER = "X-API-Key"

# documentation of the schemes in the OpenAPI schema; the checking is ``authenticate``'s
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API key (twk_…) or an OIDC access token (JWT)",
)
_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, scheme_name="apiKey")


class Authenticator:
    """Turns a presented credential into a ``Principal`` (built once at start)."""

    def __init__(self, keys: ApiKeyAuthenticator, bearer: BearerVerifier | None = None) -> None:
        self.keys = keys
        self.bearer = bearer

    async def principal(self, credential: str, *, now: datetime) -> Principal | None:
        if looks_like_key(credential):
            found = self.keys.cached(credential)
            if found is None:
                found = await run_in_threadpool(self.keys.authenticate, credential)
            return found
        if self.bearer is not None and credential.count(".") == 2:
            try:
                return await self.bearer.verify(credential, now=now)
            except InvalidToken as exc:
                log.info("bearer token refused", reason=str(exc))
                return None
        return None


def unauthenticated(detail: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": REALM})


def invalid_credential() -> ApiError:
    return ApiError(
        401,
        "invalid_token",
        "the credential is not valid",
        headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
    )


def forbidden(detail: str) -> ApiError:
    return ApiError(
        403,
        "insufficient_scope",
        detail,
        headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'},
    )


def credential_of(request: Request) -> str | None:
    """The credential a request presents, if any (``Bearer`` first, then ``X-API-Key``)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get(API_KEY_HEADER)
    if key and key.strip():
        return key.strip()
    return None


async def authenticate(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)] = None,
    _key: Annotated[str | None, Depends(_key_scheme)] = None,
) -> Principal:
    """The request's principal; 401 without a valid credential (a FastAPI dependency;
    the two unused parameters put the schemes into the OpenAPI document)."""
    return await principal_of(request)


async def principal_of(request: Request) -> Principal:
    """The request's principal; 401 without a valid credential."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    credential = credential_of(request)
    if credential is None:
        raise unauthenticated()
    auth: Authenticator = request.app.state.auth
    principal = await auth.principal(credential, now=datetime.now(UTC))
    if principal is None:
        raise invalid_credential()
    request.state.principal = principal
    return principal


def require_role(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has_role(role):
            raise forbidden(f"this needs the {role.value} role")
        return principal

    return check


def require_scope(
    scope: Scope, *, or_role: Role = Role.ADMIN
) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        return permitted(principal, scope, or_role=or_role)

    return check


def permitted(principal: Principal, scope: Scope, *, or_role: Role = Role.ADMIN) -> Principal:
    """``principal`` if it holds ``scope`` or ``or_role``, else 403 (RFC 6750 §3.1)."""
    if not (principal.has_scope(scope) or principal.has_role(or_role)):
        raise forbidden(f"this needs the {scope.value} scope or the {or_role.value} role")
    return principal


async def require_global_admin(
    principal: Annotated[Principal, Depends(require_role(Role.ADMIN))],
) -> Principal:
    """An admin of every tenant: for what is shared by all tenants (the policy)."""
    if principal.tenant is not None:
        raise forbidden("this changes every tenant: it needs an admin of every tenant")
    return principal


AnyPrincipal = Annotated[Principal, Depends(authenticate)]
Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Responder = Annotated[Principal, Depends(require_role(Role.RESPONDER))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
GlobalAdmin = Annotated[Principal, Depends(require_global_admin)]
Ingest = Annotated[Principal, Depends(require_scope(Scope.INGEST))]
MetricsReader = Annotated[Principal, Depends(require_scope(Scope.METRICS))]


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what}")


def visible(principal: Principal, tenant: str | None, what: str) -> None:
    """404 unless the object (of ``tenant``; ``None``: no such object) is the principal's."""
    if tenant is None or not principal.sees(tenant):
        raise not_found(what)


def tenant_filter(principal: Principal, asked: str | None) -> str | None:
    """The tenant a list is filtered by: the principal's own (a tenant-bound principal that
    asks for another tenant gets 404, never the other tenant's data), or what an
    all-tenants principal asked for (``None``: every tenant)."""
    if principal.tenant is None:
        return asked
    if asked is not None and asked != principal.tenant:
        raise not_found(f"tenant {asked!r}")
    return principal.tenant


__all__ = [
    "API_KEY_HEADER",
    "Admin",
    "AnyPrincipal",
    "Authenticator",
    "GlobalAdmin",
    "Ingest",
    "MetricsReader",
    "Responder",
    "Viewer",
    "authenticate",
    "credential_of",
    "forbidden",
    "invalid_credential",
    "not_found",
    "permitted",
    "principal_of",
    "require_role",
    "require_scope",
    "tenant_filter",
    "unauthenticated",
    "visible",
]
