"""The composition root: everything the service runs on, built once from Settings."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog

from detectors import build_engine, upgrade_state
from ingest import Limits, Normalizer, TokenHasher
from revocation import Policy, PolicyError, store
from revocation.store.policy_config import StoredPolicy, get_policy_config
from tokenwarden.db import get_or_create_secret, make_engine, upgrade
from tokenwarden.formats import build_formats
from tokenwarden.learned_models import adopt_stored
from tokenwarden.pipeline import Stages
from tokenwarden.rejected import RejectedLog
from tokenwarden.revocation_runtime import build_routing
from tokenwarden.settings import Settings
from tokenwarden.state import TrackedState

HASH_KEY_NAME = "token_hash_key"

log = structlog.get_logger("tokenwarden.policy")


@dataclass(slots=True)
class Services:
    settings: Settings
    db: sa.Engine
    hasher: TokenHasher
    stages: Stages
    limits: Limits
    formats: Mapping[str, Normalizer]
    rejected: RejectedLog
    #: the policy row (``PUT /v1/policy``) that ``stages.policy`` was built from; ``None``:
    #: the configured ``[policy]`` (``refresh_policy``)
    policy_source: StoredPolicy | None = None


def hash_key(settings: Settings, db: sa.Engine) -> bytes:
    """The configured hash key, or the one generated on first start and kept in the store."""
    if settings.hash_key is not None:
        return settings.hash_key.get_secret_value().encode()
    value = get_or_create_secret(db, name=HASH_KEY_NAME, factory=lambda: secrets.token_hex(32))
    return value.encode()


def active_policy(settings: Settings, stored: StoredPolicy | None) -> Policy:
    """The policy set through ``PUT /v1/policy`` if there is one, else ``[policy]``."""
    if stored is not None:
        return Policy.from_config(stored.rules, stored.modes)
    return Policy.from_config(settings.policy.rules, settings.policy.modes)


def refresh_policy(services: Services) -> Policy | None:
    """The policy to apply when the one stored with ``PUT /v1/policy`` changed since
    ``services.policy_source`` (another process took the PUT: a Kafka worker's stages are
    built once at start); ``None`` when it did not. A stored policy that no longer
    validates is logged once and ``None`` returned: the running one stays until the stored
    one changes again. A store fault raises."""
    with services.db.connect() as conn:
        stored = get_policy_config(conn)
    if stored == services.policy_source:
        return None
    services.policy_source = stored
    try:
        return active_policy(services.settings, stored)
    except (PolicyError, TypeError, ValueError) as exc:
        log.error("stored policy refused; the running one stays", error=str(exc))
        return None


def follow_policy(services: Services, stages: Sequence[Stages] = ()) -> Policy | None:
    """Run the policy another process stored since this one last applied one (API
    replicas, the embedded pipeline and Kafka workers share the store, not their memory):
    applied to ``stages`` (default ``services.stages``) and logged; ``None`` when nothing
    changed (``refresh_policy``)."""
    policy = refresh_policy(services)
    if policy is not None:
        for s in stages or (services.stages,):
            s.policy = policy
        source = services.policy_source
        log.info(
            "policy applied",
            rules=len(policy.rules),
            updated_by=source.updated_by if source else None,
            updated_at=source.updated_at.isoformat() if source else None,
        )
    return policy


async def follow_policy_off_loop(services: Services, stages: Sequence[Stages] = ()) -> None:
    """``follow_policy`` in a worker thread, for the runners' periodic look: a store fault
    keeps the running policy (logged) and the next look tries again."""
    try:
        await asyncio.to_thread(follow_policy, services, stages)
    except Exception as exc:
        log.warning("policy refresh failed; the current one stays", error=repr(exc))


def build_services(
    settings: Settings,
    *,
    migrate: bool = True,
    load_state: bool = True,
    adopt_models: bool = True,
) -> Services:
    """Open the database (migrating it), load detector state, wire the stages.

    ``load_state=False`` where the stages' detector state lives elsewhere (the Kafka
    runner: faust Tables) — the saved state can be large and would only be thrown away.
    ``adopt_models=False`` where nothing is scored (the API of ``serve --broker``: the
    workers detect): no learned model is loaded into its engine, neither the stored ones
    nor a configured ``[detectors.model] path`` file."""
    db = make_engine(settings.database_url)
    if migrate:
        upgrade(db)
    params = settings.detectors
    if not adopt_models and "path" in params.get("model", {}):
        params = {**params, "model": {k: v for k, v in params["model"].items() if k != "path"}}
    engine = build_engine(settings.enabled_detectors, params)
    with db.connect() as conn:
        state = TrackedState(store.load_state(conn) if load_state else {})
        stored = get_policy_config(conn)
        if adopt_models:
            adopt_stored(engine, conn)
    if upgrade_state(state):  # a snapshot saved before the per-entity records: move it now
        changed, deleted = state.take_changes()
        with db.begin() as conn:
            store.save_state(conn, changed=changed, deleted=deleted, now=datetime.now(UTC))
    stages = Stages(
        db=db,
        engine=engine,
        policy=active_policy(settings, stored),
        state=state,
        routing=build_routing(settings.revocation),
        usage_state_flush_seconds=settings.usage_state_flush_seconds,
    )
    hasher = TokenHasher(hash_key(settings, db))
    return Services(
        settings=settings,
        db=db,
        hasher=hasher,
        stages=stages,
        limits=Limits(max_bytes=settings.max_batch_bytes, max_events=settings.max_batch_events),
        formats=build_formats(settings.ingest),
        rejected=RejectedLog(settings.ingest.rejected_keep, hasher),
        policy_source=stored,
    )
