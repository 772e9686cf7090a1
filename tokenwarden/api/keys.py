"""``GET /v1/whoami`` and the API keys: ``POST/GET /v1/keys``, ``DELETE /v1/keys/{id}``.

Keys are managed by admins (``admin`` role). A tenant's admin manages its tenant's keys
only; only an admin of every tenant may make another key of every tenant (an ``admin``-scoped
one). The key is in the ``POST`` answer and nowhere else, ever: store it then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from revocation.txn import writing
from tokenwarden.api.deps import ConnDep, ServicesDep
from tokenwarden.api.errors import ApiError
from tokenwarden.auth.api_keys import ApiKeyError, create_key, get_key, list_keys, revoke_key
from tokenwarden.auth.deps import Admin, AnyPrincipal, Authenticator, not_found, tenant_filter
from tokenwarden.auth.principal import Principal, Role, Scope

router = APIRouter(prefix="/v1", tags=["auth"])


class WhoAmI(BaseModel):
    tenant: str | None
    roles: list[Role]
    scopes: list[Scope]
    kind: str
    subject: str


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: AnyPrincipal) -> dict[str, Any]:
    """The caller as the API sees it: tenant (``null``: every tenant), roles, scopes."""
    return principal.describe()


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="default: the caller's tenant; omitted by an all-tenants admin: a key "
        "of every tenant (admin scope only)",
    )
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    role: Role | None = Field(default=None, description="for an admin-scoped key; default admin")
    name: str | None = Field(default=None, max_length=200)


def _key_visible(principal: Principal, tenant: str | None, key_id: str) -> None:
    if principal.tenant is not None and tenant != principal.tenant:
        raise not_found(f"key {key_id!r}")


@router.post("/keys", status_code=201)
def create(body: NewKey, services: ServicesDep, principal: Admin) -> dict[str, Any]:
    """Create a key (``admin``). The answer's ``key`` is shown this once; only its hash is
    kept."""
    tenant = body.tenant if body.tenant is not None else principal.tenant
    if principal.tenant is not None:
        tenant_filter(principal, tenant)
    try:
        with writing(services.db) as conn:
            issued = create_key(
                conn,
                tenant=tenant,
                scopes=[s.value for s in body.scopes],
                role=body.role.value if body.role else None,
                name=body.name,
                actor=principal.actor,
                now=datetime.now(UTC),
            )
    except ApiKeyError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    return {"key": issued.key, **issued.view.model_dump(mode="json")}


@router.get("/keys")
def list_all(
    conn: ConnDep,
    principal: Admin,
    tenant: Annotated[str | None, Query(max_length=128)] = None,
    include_revoked: bool = False,
) -> list[dict[str, Any]]:
    """Keys (``admin``), newest first: ids, tenants, scopes, roles — never secrets."""
    found = list_keys(
        conn, tenant=tenant_filter(principal, tenant), include_revoked=include_revoked
    )
    return [k.model_dump(mode="json") for k in found]


@router.delete("/keys/{key_id}")
def revoke(
    key_id: str, request: Request, services: ServicesDep, principal: Admin
) -> dict[str, Any]:
    """Revoke a key (``admin``): refused from the next request on."""
    with services.db.connect() as conn:
        found = get_key(conn, key_id=key_id)
    if found is None:
        raise not_found(f"key {key_id!r}")
    _key_visible(principal, found.tenant, key_id)
    with writing(services.db) as conn:
        revoked = revoke_key(conn, key_id=key_id, actor=principal.actor, now=datetime.now(UTC))
    auth: Authenticator = request.app.state.auth
    auth.keys.forget(key_id)
    assert revoked is not None
    return revoked.model_dump(mode="json")
