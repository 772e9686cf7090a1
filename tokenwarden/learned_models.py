"""The ``model`` detector's fitted models between the Engine and the store: loaded at start
(``adopt_stored``), handed to the batch that fitted them to be saved in its transaction
(``take_fitted``; ``revocation.store.detector_models``)."""

from __future__ import annotations

from concurrent.futures import Executor
from datetime import datetime

import sqlalchemy as sa
import structlog

from detectors import Engine, ModelArtifact, ModelDetector
from revocation import store
from revocation.txn import writing

log = structlog.get_logger("tokenwarden.models")


def model_detector(engine: Engine) -> ModelDetector | None:
    """The Engine's ``model`` detector (registered once, if enabled)."""
    return next((d for d in engine.detectors if isinstance(d, ModelDetector)), None)


def prepare_fitting(engine: Engine, executor: Executor | None = None) -> None:
    """At a service's start: what the ``model`` detector needs to fit, and where its fits
    run (``ModelDetector.prepare``)."""
    detector = model_detector(engine)
    if detector is not None:
        detector.prepare(executor)


def take_fitted(engine: Engine) -> ModelArtifact | None:
    """The models the Engine's ``model`` detector fitted since it was last asked."""
    detector = model_detector(engine)
    return detector.take_fitted() if detector is not None else None


def save_fitted(engine: Engine, db: sa.Engine, *, now: datetime, wait: float = 0.0) -> list[str]:
    """Save, in a transaction of their own, the models fitted since the last batch took
    them — a fit that ended in its thread after the last batch, which the next batch would
    otherwise save only when traffic comes. ``wait``: seconds to wait for fits still
    running (at a service's stop). A store fault raises, and the models are handed out
    again (``ModelDetector.hand_back``) for the next batch to save. Returns the tenants
    saved (a tenant whose stored model is newer is left alone)."""
    detector = model_detector(engine)
    if detector is None:
        return []
    if wait:
        detector.finish_fits(wait)
    fitted = detector.take_fitted()
    if fitted is None:
        return []
    try:
        saved = save_to_store(db, fitted, now=now)
    except Exception:
        detector.hand_back(fitted)
        raise
    log.info("fitted models saved", tenants=saved)
    return saved


def save_to_store(db: sa.Engine, artifact: ModelArtifact, *, now: datetime) -> list[str]:
    """Store the models (the service loads them at its next start); a tenant whose stored
    model is newer keeps it. Returns the tenants written."""
    models = store.encode_models(artifact)
    with writing(db) as conn:
        return store.save_models(conn, models=models, now=now)


def adopt_stored(engine: Engine, conn: sa.Connection) -> list[str]:
    """Give the Engine's ``model`` detector the stored models newer than the ones it has
    (a configured ``path`` file's); a stored model that cannot be read is logged and its
    tenant fits itself again. Returns the tenants adopted."""
    detector = model_detector(engine)
    if detector is None:
        return []
    artifact, errors = store.load_models(conn)
    for tenant, error in errors.items():
        log.error(
            "stored model not loaded; the tenant's model fits itself again",
            tenant=tenant,
            error=error,
        )
    adopted = detector.adopt(artifact)
    if adopted:
        log.info("stored models loaded", tenants=sorted(adopted))
    return sorted(adopted)
