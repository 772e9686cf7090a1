"""Who is calling: a ``Principal`` with its tenant, roles and scopes.

Two kinds of credential become a principal (``tokenwarden.auth.deps``): an API key
(``tokenwarden.auth.api_keys``) and an OIDC bearer JWT (``tokenwarden.auth.bearer``), both
presented as ``Authorization: Bearer <credential>`` (RFC 6750 §2.1).

Roles nest: ``viewer`` reads; ``responder`` is a viewer who also acknowledges alerts, throws
and releases kill switches and revokes families; ``admin`` is a responder who also changes
the policy, transmitters, adapters and keys. Scopes belong to API keys: ``ingest`` (``POST
/v1/events``, HEC), ``check`` (``POST /v1/check``), ``metrics`` (``GET /metrics``) and
``admin`` (the admin API, with the key's role).

A principal belongs to one tenant and never sees another's objects. ``tenant`` is ``None``
only for an instance-wide principal: the admin key made on first start, a key made with
``tokenwarden keys create --global``, or a bearer token whose tenant claim carries the
configured all-tenants value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal


class Role(StrEnum):
    VIEWER = "viewer"
    RESPONDER = "responder"
    ADMIN = "admin"


class Scope(StrEnum):
    INGEST = "ingest"
    CHECK = "check"
    METRICS = "metrics"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.RESPONDER: 1, Role.ADMIN: 2}

Kind = Literal["api_key", "bearer"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``subject``: the key id (``key:<id>``) or the token's
    ``sub``; ``tenant`` ``None``: every tenant (see the module docstring)."""

    tenant: str | None
    roles: frozenset[Role]
    scopes: frozenset[Scope]
    kind: Kind
    subject: str

    def has_role(self, role: Role) -> bool:
        """Whether one of the principal's roles is ``role`` or above it."""
        return any(_RANK[r] >= _RANK[role] for r in self.roles)

    def has_scope(self, scope: Scope) -> bool:
        return scope in self.scopes

    def sees(self, tenant: str) -> bool:
        """Whether objects of ``tenant`` are visible to this principal."""
        return self.tenant is None or self.tenant == tenant

    @property
    def actor(self) -> str:
        """Who to name in the audit trail: ``key:<id>`` or ``bearer:<sub>``."""
        return self.subject if self.kind == "api_key" else f"bearer:{self.subject}"

    def describe(self) -> dict[str, Any]:
        """The ``GET /v1/whoami`` document."""
        return {
            "tenant": self.tenant,
            "roles": sorted(r.value for r in self.roles),
            "scopes": sorted(s.value for s in self.scopes),
            "kind": self.kind,
            "subject": self.subject,
        }


def roles_for(scopes: frozenset[Scope], role: Role | None) -> frozenset[Role]:
    """An API key's roles: its ``role`` when it has the ``admin`` scope, else none."""
    if Scope.ADMIN in scopes:
        return frozenset({role or Role.ADMIN})
    return frozenset()


__all__ = ["Kind", "Principal", "Role", "Scope", "roles_for"]
