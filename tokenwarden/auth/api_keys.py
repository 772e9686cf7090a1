"""API keys for SIEM forwarders, gateways, scrapers and admins.

A key is ``twk_<id>_<secret>``: ``id`` 16 hex digits (public: it names the key in lists,
logs and the audit trail), ``secret`` 43 base64url characters (256 random bits). The key
is shown once, when it is created; the store keeps only ``SHA-256(key)`` — a fast hash is
enough for a 256-bit random secret (nothing to brute-force, unlike a password) — and
compares it in constant time. Keys are presented as ``Authorization: Bearer <key>``
(RFC 6750 §2.1) or ``X-API-Key: <key>``.

Each key belongs to one tenant (or, for an ``admin`` key made with ``--global`` and the
key made on first start, to every tenant), carries scopes (``ingest``, ``check``,
``metrics``, ``admin``) and — with the ``admin`` scope — a role (default ``admin``).
Revoking a key keeps its row with ``revoked_at``; creating and revoking are audited.

``ApiKeyAuthenticator`` remembers a verified key for ``cache_seconds`` (so a gateway's
``/v1/check`` does not pay a database read per call); a key revoked through this process is
forgotten at once, one revoked by another process (the CLI) within ``cache_seconds``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from revocation.store.audit import append_audit
from revocation.tables import api_keys, instance_secrets
from revocation.txn import writing
from revocation.upsert import dialect_insert
from tokenwarden.auth.principal import Principal, Role, Scope, roles_for

KEY_PREFIX = "twk"
_KEY_RE = re.compile(r"^twk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
#: ``instance_secrets`` row marking that the first-start admin key was made (or skipped
#: because keys already existed): it is made at most once per database.
BOOTSTRAP_MARKER = "admin_key_bootstrapped"


class ApiKeyError(ValueError):
    """A key that cannot be created or revoked: ``code`` and a message saying why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ApiKeyView(BaseModel):
    """A stored key as listed: never its secret or hash."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant: str | None
    scopes: tuple[str, ...]
    role: str | None
    name: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: ``key`` is the only copy of the secret there will ever be."""

    key: str
    view: ApiKeyView

    @property
    def key_id(self) -> str:
        return self.view.id


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256 of the whole ``twk_…`` string."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key(value: str) -> str | None:
    """The key id of a well-formed key, else ``None``."""
    m = _KEY_RE.match(value)
    return m.group(1) if m else None


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX + "_")


def _view(row: Mapping[str, Any] | sa.RowMapping) -> ApiKeyView:
    return ApiKeyView.model_validate({k: v for k, v in row.items() if k != "secret_hash"})


def _checked(
    tenant: str | None, scopes: Iterable[str], role: str | None
) -> tuple[frozenset[Scope], Role | None]:
    try:
        wanted = frozenset(Scope(s) for s in scopes)
    except ValueError:
        known = ", ".join(s.value for s in Scope)
        raise ApiKeyError(
            "invalid", f"unknown scope in {sorted(scopes)}; scopes: {known}"
        ) from None
    if not wanted:
        raise ApiKeyError("invalid", "a key needs at least one scope")
    parsed: Role | None = None
    if role is not None:
        try:
            parsed = Role(role)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise ApiKeyError("invalid", f"unknown role {role!r}; roles: {known}") from None
        if Scope.ADMIN not in wanted:
            raise ApiKeyError("invalid", "a role is only given to a key with the admin scope")
    if Scope.ADMIN in wanted and parsed is None:
        parsed = Role.ADMIN
    if tenant is None and Scope.ADMIN not in wanted:
        raise ApiKeyError("invalid", "only an admin key may span every tenant; name a tenant")
    if tenant is not None and not tenant.strip():
        raise ApiKeyError("invalid", "the tenant is empty")
    return wanted, parsed


def create_key(
    conn: sa.Connection,
    *,
    tenant: str | None,
    scopes: Iterable[str],
    role: str | None = None,
    name: str | None = None,
    actor: str,
    now: datetime,
) -> IssuedKey:
    """Create and store a key (its hash), audited as ``api_key.created``; the caller owns
    the transaction and shows ``IssuedKey.key`` once."""
    wanted, parsed = _checked(tenant, scopes, role)
    key_id = secrets.token_hex(8)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    row = {
        "id": key_id,
        "secret_hash": hash_key(key),
        "tenant": tenant,
        "scopes": sorted(s.value for s in wanted),
        "role": parsed.value if parsed else None,
        "name": name,
        "created_at": now,
        "created_by": actor,
        "revoked_at": None,
        "revoked_by": None,
    }
    conn.execute(sa.insert(api_keys).values(**row))
    append_audit(
        conn,
        at=now,
        actor=actor,
        kind="api_key.created",
        ref=key_id,
        data={"tenant": tenant, "scopes": row["scopes"], "role": row["role"], "name": name},
    )
    return IssuedKey(key=key, view=_view(row))


def list_keys(
    conn: sa.Connection, *, tenant: str | None = None, include_revoked: bool = False
) -> list[ApiKeyView]:
    """Keys, newest first; of one tenant when ``tenant`` is given."""
    query = sa.select(api_keys).order_by(api_keys.c.created_at.desc(), api_keys.c.id)
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return [_view(r._mapping) for r in conn.execute(query)]


def get_key(conn: sa.Connection, *, key_id: str) -> ApiKeyView | None:
    row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
    return _view(row._mapping) if row is not None else None


def revoke_key(conn: sa.Connection, *, key_id: str, actor: str, now: datetime) -> ApiKeyView | None:
    """Revoke a key (audited as ``api_key.revoked``); ``None`` if there is no such key. A
    key revoked before stays as it was."""
    found = get_key(conn, key_id=key_id)
    if found is None or found.revoked_at is not None:
        return found
    conn.execute(
        sa.update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=actor)
    )
    append_audit(
        conn, at=now, actor=actor, kind="api_key.revoked", ref=key_id, data={"tenant": found.tenant}
    )
    return get_key(conn, key_id=key_id)


def principal_of(view: ApiKeyView) -> Principal:
    scopes = frozenset(Scope(s) for s in view.scopes)
    return Principal(
        tenant=view.tenant,
        roles=roles_for(scopes, Role(view.role) if view.role else None),
        scopes=scopes,
        kind="api_key",
        subject=f"key:{view.id}",
    )


def verify_key(conn: sa.Connection, presented: str) -> Principal | None:
    """The principal of a presented key, or ``None`` if it is malformed, unknown, revoked
    or its secret does not match (compared in constant time)."""
    key_id = parse_key(presented)
    if key_id is None:
        return None
    row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(hash_key(presented), row.secret_hash):
        return None
    return principal_of(_view(row._mapping))


class ApiKeyAuthenticator:
    """``verify_key`` with a short cache (see the module docstring). Thread-safe."""

    def __init__(
        self,
        db: sa.Engine,
        *,
        cache_seconds: float = 5.0,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self.monotonic = monotonic
        self._lock = threading.Lock()
        # key hash -> (principal, valid until); only verified keys are cached
        self._cache: dict[str, tuple[Principal, float]] = {}

    def cached(self, presented: str) -> Principal | None:
        """A still-fresh cached answer for this key, without touching the database."""
        digest = hash_key(presented)
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > self.monotonic():
            return hit[0]
        return None

    def authenticate(self, presented: str) -> Principal | None:
        """The key's principal, from the cache or the database."""
        found = self.cached(presented)
        if found is not None:
            return found
        with self.db.connect() as conn:
            principal = verify_key(conn, presented)
        if principal is not None and self.cache_seconds > 0:
            with self._lock:
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
                self._cache[hash_key(presented)] = (
                    principal,
                    self.monotonic() + self.cache_seconds,
                )
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a (revoked) key from the cache at once."""
        subject = f"key:{key_id}"
        with self._lock:
            for digest in [d for d, (p, _) in self._cache.items() if p.subject == subject]:
                del self._cache[digest]


def bootstrap_admin_key(db: sa.Engine, *, now: datetime) -> IssuedKey | None:
    """On the first start of a database with no keys: make the instance-wide admin key.

    At most once per database, whatever the number of processes starting together: the
    one that inserts the ``instance_secrets`` marker makes the key, in the same
    transaction. ``None`` when keys existed or it was done before.
    """
    with writing(db) as conn:
        ins = dialect_insert(conn, instance_secrets).values(
            name=BOOTSTRAP_MARKER, value=now.isoformat()
        )
        won = conn.execute(
            ins.on_conflict_do_nothing(index_elements=[instance_secrets.c.name])
        ).rowcount
        if not won:
            return None
        if conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one():
            return None
        return create_key(
            conn,
            tenant=None,
            scopes=[Scope.ADMIN.value],
            role=Role.ADMIN.value,
            name="first-start admin key",
            actor="system:first-start",
            now=now,
        )


__all__ = [
    "BOOTSTRAP_MARKER",
    "KEY_PREFIX",
    "ApiKeyAuthenticator",
    "ApiKeyError",
    "ApiKeyView",
    "IssuedKey",
    "bootstrap_admin_key",
    "create_key",
    "get_key",
    "hash_key",
    "list_keys",
    "looks_like_key",
    "parse_key",
    "principal_of",
    "revoke_key",
    "verify_key",
]
