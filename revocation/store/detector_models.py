"""The ``model`` detector's fitted models in the store (``detector_models``): one row per
tenant holding its pickle-free archive (``detectors.model_artifact``: the forest and the
rows it was fitted on).

Saved in the transaction of the batch whose traffic fitted them; loaded at start so a
restart scores with the model it had (and refits on its schedule from the rows it was
fitted on) instead of waiting for an hour of new traffic; ``tokenwarden train
--from-store`` refits from them. When two processes fit a tenant (Kafka workers each see
some of its entities) the newest ``trained_at`` — event time — stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from detectors import ModelArtifact, ModelFileError
from revocation.statements import per_dialect
from revocation.tables import detector_models
from revocation.upsert import insert_for


@dataclass(frozen=True, slots=True)
class StoredModel:
    """A stored model's row, without its archive."""

    tenant: str
    trained_at: datetime
    rows: int
    size: int
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class EncodedModel:
    """One tenant's model as its row will hold it (``encode_models``)."""

    tenant: str
    trained_at: datetime
    rows: int
    archive: bytes


def encode_models(artifact: ModelArtifact) -> list[EncodedModel]:
    """Each tenant's model of ``artifact`` (with its sample) as its own archive — ~20 ms a
    tenant of compression, done before the transaction that saves them, not inside it."""
    encoded = []
    for tenant, model in sorted(artifact.tenants.items()):
        single = ModelArtifact(
            tenants={tenant: model},
            created=artifact.created,
            samples={tenant: artifact.samples[tenant]} if tenant in artifact.samples else {},
        )
        trained_at = datetime.fromtimestamp(model.trained_at, UTC)
        encoded.append(EncodedModel(tenant, trained_at, model.rows, single.to_bytes()))
    return encoded


def save_models(conn: Connection, *, models: Sequence[EncodedModel], now: datetime) -> list[str]:
    """Store each tenant's model, unless the store holds a newer one for that tenant;
    returns the tenants written."""
    written: list[str] = []
    for m in models:
        values = {
            "tenant": m.tenant,
            "trained_at": m.trained_at,
            "rows": m.rows,
            "artifact": m.archive,
            "saved_at": now,
        }
        written += conn.execute(_upsert(conn), values).scalars().all()
    return written


@per_dialect
def _upsert(dialect: str) -> Any:
    ins = insert_for(dialect, detector_models)
    return ins.on_conflict_do_update(
        index_elements=[detector_models.c.tenant],
        set_={c: ins.excluded[c] for c in ("trained_at", "rows", "artifact", "saved_at")},
        where=detector_models.c.trained_at <= ins.excluded.trained_at,
    ).returning(detector_models.c.tenant)


def load_models(
    conn: Connection, *, tenants: Iterable[str] | None = None
) -> tuple[ModelArtifact, dict[str, str]]:
    """Every stored model (or those of ``tenants``) in one artifact, and, by tenant, why a
    row could not be read (``ModelFileError``: damaged, or saved by a build with other
    features — that tenant's model fits itself again)."""
    query = select(detector_models.c.tenant, detector_models.c.artifact).order_by(
        detector_models.c.tenant
    )
    if tenants is not None:
        query = query.where(detector_models.c.tenant.in_(sorted(set(tenants))))
    merged = ModelArtifact()
    errors: dict[str, str] = {}
    for tenant, data in conn.execute(query):
        try:
            one = ModelArtifact.from_bytes(bytes(data), source=f"the stored model of {tenant}")
        except ModelFileError as exc:
            errors[tenant] = str(exc)
            continue
        if set(one.tenants) != {tenant}:
            errors[tenant] = f"the stored model of {tenant} holds tenants {sorted(one.tenants)}"
            continue
        merged.tenants.update(one.tenants)
        merged.samples.update(one.samples)
    return merged, errors


def list_models(conn: Connection, *, tenant: str | None = None) -> list[StoredModel]:
    """The stored models (of ``tenant``, or all), without their archives."""
    t = detector_models.c
    query = select(t.tenant, t.trained_at, t.rows, func.length(t.artifact), t.saved_at)
    if tenant is not None:
        query = query.where(t.tenant == tenant)
    rows = conn.execute(query.order_by(t.tenant))
    return [StoredModel(r[0], r[1], r[2], int(r[3]), r[4]) for r in rows]
