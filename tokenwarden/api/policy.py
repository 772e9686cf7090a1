"""The policy: ``GET /v1/policy`` (``viewer``), ``PUT /v1/policy`` and
``PUT /v1/policy/rules/{name}/mode`` (an admin of every tenant: the policy is shared).

``GET`` lists each rule with its ``mode`` and what its orders did — ``would_have`` for the
dry-run orders ("would have revoked N families"), ``did`` for the enforced ones — over the
caller's tenant(s) and ``since`` (default: everything). ``PUT`` validates with
``revocation.Policy.from_config`` (a bad rule is 422 naming it), stores the policy
(``policy_config``, audited) so it outlives a restart, and applies it to the running
pipeline from its next batch; Kafka workers and the embedded pipeline of another API
process (a replica on the same store) apply it within ``policy_refresh_seconds``, and such
a replica shows it at its next ``GET``/``PUT`` of the policy
(``tokenwarden.services.follow_policy``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from revocation import Policy, store
from revocation.order import Mode
from revocation.policy import PolicyError, PolicyRule
from revocation.store.policy_config import get_policy_config, save_policy_config
from revocation.txn import writing
from tokenwarden.api.deps import ConnDep, ServicesDep
from tokenwarden.api.errors import ApiError
from tokenwarden.api.paging import aware
from tokenwarden.auth.deps import GlobalAdmin, Viewer, not_found, tenant_filter
from tokenwarden.services import Services, follow_policy

router = APIRouter(prefix="/v1", tags=["policy"])

_ZERO = {"orders": 0, "families": 0, "tokens": 0, "kill_switches": 0}


def _rule_doc(rule: PolicyRule) -> dict[str, Any]:
    doc = asdict(rule)
    return {
        k: (list(v) if isinstance(v, tuple) else v.value if hasattr(v, "value") else v)
        for k, v in doc.items()
    }


def _current(
    services: Services, conn: Any
) -> tuple[list[dict[str, Any]] | None, dict[str, str], str, Any]:
    stored = get_policy_config(conn)
    if stored is not None:
        return stored.rules, dict(stored.modes), "api", stored
    cfg = services.settings.policy
    return cfg.rules, dict(cfg.modes), "settings", None


def _document(
    services: Services, conn: Any, tenant: str | None, since: datetime | None
) -> dict[str, Any]:
    _, _, source, stored = _current(services, conn)
    dry = store.summarize(conn, mode=Mode.DRY_RUN, tenant=tenant, since=since)
    enforced = store.summarize(conn, mode=Mode.ENFORCE, tenant=tenant, since=since)
    rules = []
    for rule in services.stages.policy.rules:
        doc = _rule_doc(rule)
        doc["would_have"] = {**_ZERO, **dry.by_rule.get(rule.name, {})}
        doc["did"] = {**_ZERO, **enforced.by_rule.get(rule.name, {})}
        rules.append(doc)
    return {
        "source": source,
        "updated_at": stored.updated_at.isoformat() if stored else None,
        "updated_by": stored.updated_by if stored else None,
        "rules": rules,
        "dry_run": {
            "orders": dry.orders,
            "families": dry.families,
            "tokens": dry.tokens,
            "kill_switches": dry.kill_switches,
        },
    }


@router.get("/policy")
def get_policy(
    conn: ConnDep,
    services: ServicesDep,
    principal: Viewer,
    tenant: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """The running policy's rules, each with its mode and "would have" counts."""
    follow_policy(services)
    return _document(services, conn, tenant_filter(principal, tenant), aware(since))


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] | None = Field(
        default=None, max_length=500, description="the rules (README, Policy); null: defaults"
    )
    modes: dict[str, Literal["enforce", "dry_run"]] = Field(default_factory=dict)


def _apply(
    services: Services,
    rules: list[dict[str, Any]] | None,
    modes: dict[str, str],
    actor: str,
) -> None:
    try:
        policy = Policy.from_config(rules, modes)
    except (PolicyError, TypeError, ValueError) as exc:
        raise ApiError(422, "invalid_policy", str(exc)) from None
    with writing(services.db) as conn:
        stored = save_policy_config(
            conn, rules=rules, modes=modes, actor=actor, now=datetime.now(UTC)
        )
    services.stages.policy = policy
    services.policy_source = stored


@router.put("/policy")
def put_policy(body: PolicyBody, services: ServicesDep, principal: GlobalAdmin) -> dict[str, Any]:
    """Replace the policy (validated; stored; applied from the next batch)."""
    _apply(services, body.rules, dict(body.modes), principal.actor)
    with services.db.connect() as conn:
        return _document(services, conn, None, None)


class ModeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["enforce", "dry_run"]


@router.put("/policy/rules/{name}/mode")
def put_rule_mode(
    name: str, body: ModeBody, services: ServicesDep, principal: GlobalAdmin
) -> dict[str, Any]:
    """Switch one rule between ``enforce`` and ``dry_run`` (the dry-run toggle)."""
    follow_policy(services)
    if name not in {r.name for r in services.stages.policy.rules}:
        raise not_found(f"rule {name!r}")
    with services.db.connect() as conn:
        rules, modes, _, _ = _current(services, conn)
    modes[name] = body.mode
    _apply(services, rules, modes, principal.actor)
    with services.db.connect() as conn:
        return _document(services, conn, None, None)
