"""The ``model`` detector's fitted models between the Engine and the store: loaded at start
(``adopt_stored``), handed to the batch that fitted them to be saved in its transaction
(``take_fitted``; ``revocation.store.detector_models``)."""

from __future__ import annotations

import sqlalchemy as sa
import structlog

from detectors import Engine, ModelArtifact, ModelDetector
from revocation import store

log = structlog.get_logger("tokenwarden.models")


def model_detectors(engine: Engine) -> list[ModelDetector]:
    return [d for d in engine.detectors if isinstance(d, ModelDetector)]


def take_fitted(engine: Engine) -> ModelArtifact | None:
    """The models the Engine's ``model`` detector fitted since it was last asked."""
    taken = None
    for detector in model_detectors(engine):
        fitted = detector.take_fitted()
        if fitted is None:
            continue
        if taken is None:
            taken = fitted
        else:
            taken.update(fitted)
    return taken


def adopt_stored(engine: Engine, conn: sa.Connection) -> list[str]:
    """Give the Engine's ``model`` detector the stored models newer than the ones it has
    (a configured ``path`` file's); a stored model that cannot be read is logged and its
    tenant fits itself again. Returns the tenants adopted."""
    detectors = model_detectors(engine)
    if not detectors:
        return []
    artifact, errors = store.load_models(conn)
    for tenant, error in errors.items():
        log.error(
            "stored model not loaded; the tenant's model fits itself again",
            tenant=tenant,
            error=error,
        )
    adopted: set[str] = set()
    for detector in detectors:
        adopted.update(detector.adopt(artifact))
    if adopted:
        log.info("stored models loaded", tenants=sorted(adopted))
    return sorted(adopted)
