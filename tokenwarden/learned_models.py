"""The ``model`` detector's fitted models between the Engine and the store: loaded at start
(``adopt_stored``), handed to the batch that fitted them to be saved in its transaction
(``take_fitted``; ``revocation.store.detector_models``)."""

from __future__ import annotations

from concurrent.futures import Executor

import sqlalchemy as sa
import structlog

from detectors import Engine, ModelArtifact, ModelDetector
from revocation import store

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
