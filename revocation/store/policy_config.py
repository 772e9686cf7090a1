"""The policy set through the admin API (``PUT /v1/policy``): one row that, once written,
replaces the configured ``[policy]`` — across restarts and for every process that reads it
at start. Written with an audit row (``policy.updated``) in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from revocation.store.audit import append_audit
from revocation.tables import policy_config
from revocation.upsert import dialect_insert

_ROW_ID = 1


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """``rules`` ``None``: the built-in defaults; ``modes``: rule name -> mode."""

    rules: list[dict[str, Any]] | None
    modes: dict[str, str]
    updated_at: datetime
    updated_by: str


def get_policy_config(conn: Connection) -> StoredPolicy | None:
    row = conn.execute(select(policy_config).where(policy_config.c.id == _ROW_ID)).first()
    if row is None:
        return None
    return StoredPolicy(
        rules=row.rules, modes=dict(row.modes), updated_at=row.updated_at, updated_by=row.updated_by
    )


def save_policy_config(
    conn: Connection,
    *,
    rules: Sequence[Mapping[str, Any]] | None,
    modes: Mapping[str, str],
    actor: str,
    now: datetime,
) -> StoredPolicy:
    """Store the policy (already validated by ``Policy.from_config``) and audit it."""
    stored_rules = [dict(r) for r in rules] if rules is not None else None
    values: dict[str, Any] = {
        "rules": stored_rules,
        "modes": dict(modes),
        "updated_at": now,
        "updated_by": actor,
    }
    ins = dialect_insert(conn, policy_config).values(id=_ROW_ID, **values)
    conn.execute(ins.on_conflict_do_update(index_elements=[policy_config.c.id], set_=values))
    append_audit(
        conn,
        at=now,
        actor=actor,
        kind="policy.updated",
        ref="policy",
        data={"rules": values["rules"], "modes": values["modes"]},
    )
    return StoredPolicy(rules=values["rules"], modes=dict(modes), updated_at=now, updated_by=actor)


__all__ = ["StoredPolicy", "get_policy_config", "save_policy_config"]
