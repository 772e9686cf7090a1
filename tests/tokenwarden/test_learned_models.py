"""The model the service fitted is saved with the batch that fitted it and loaded at the
next start (``tokenwarden.learned_models``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from detectors import FEATURES, ModelArtifact, ModelDetector
from revocation import store
from revocation.tables import detector_models
from tests.credentials import bearer, mint_key
from tests.detectors.usage import T0, Deferred, event
from tokenwarden.app import create_app
from tokenwarden.learned_models import model_detector, prepare_fitting, save_fitted
from tokenwarden.services import Services, build_services
from tokenwarden.settings import Settings

MODEL = {"min_train_rows": 100, "reservoir_rows": 200, "min_train_seconds": 600, "n_estimators": 10}


def _settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 's.db'}", detectors={"model": dict(MODEL)})


def _model(services: Services) -> ModelDetector:
    detector = model_detector(services.stages.engine)
    assert detector is not None
    return detector


def _traffic(services: Services, minutes: int) -> None:
    """A steady agent over ``minutes``, one batch per minute."""
    for minute in range(minutes):
        events = [
            event(minute * 60.0 + i * 10.0, audience=f"https://api.t{i % 3}.example")
            for i in range(6)
        ]
        services.stages.process(events, now=T0 + timedelta(minutes=minute + 1))


def test_a_fitted_model_is_saved_and_loaded_at_the_next_start(tmp_path: Path) -> None:
    services = build_services(_settings(tmp_path))
    _traffic(services, 30)
    fitted = _model(services).models["acme"]
    with services.db.connect() as conn:
        (row,) = store.list_models(conn)
    assert (row.tenant, row.rows) == ("acme", fitted.rows)
    assert row.trained_at.timestamp() == fitted.trained_at
    services.db.dispose()

    restarted = build_services(_settings(tmp_path))
    model = _model(restarted)
    probe = np.vstack([np.zeros((5, len(FEATURES))), np.full((2, len(FEATURES)), 3.0)])
    assert model.models["acme"].trained_at == fitted.trained_at
    assert np.array_equal(model.models["acme"].anomaly(probe), fitted.anomaly(probe))
    assert model.reservoir_sizes() == {"acme": fitted.rows}


def test_a_process_that_scores_nothing_does_not_load_the_stored_models(
    tmp_path: Path,
) -> None:
    """``adopt_models=False`` (the API of ``serve --broker``, whose workers detect): the
    stored models stay in the store and a configured model file is not read, the engine
    has no model; a detecting start loads them."""
    services = build_services(_settings(tmp_path))
    _traffic(services, 30)
    assert set(_model(services).models) == {"acme"}
    services.db.dispose()
    path = tmp_path / "model.npz"
    other = ModelDetector().fit(np.zeros((300, len(FEATURES))), trained_at=0.0)
    ModelArtifact(tenants={"beta": other}).save(path)
    settings = _settings(tmp_path)
    settings.detectors["model"]["path"] = str(path)

    publishing = build_services(settings, load_state=False, adopt_models=False)
    assert _model(publishing).models == {}
    assert settings.detectors["model"]["path"] == str(path)  # the settings left as they were
    with publishing.db.connect() as conn:
        assert [r.tenant for r in store.list_models(conn)] == ["acme"]
    publishing.db.dispose()
    assert set(_model(build_services(settings)).models) == {"acme", "beta"}


def test_a_stored_model_that_cannot_be_read_is_logged_and_the_service_starts(
    tmp_path: Path,
) -> None:
    services = build_services(_settings(tmp_path))
    _traffic(services, 30)
    with services.db.begin() as conn:
        conn.execute(sa.update(detector_models).values(artifact=b"not an archive"))
    services.db.dispose()
    with capture_logs() as logs:
        restarted = build_services(_settings(tmp_path))
    assert _model(restarted).models == {}
    (entry,) = [e for e in logs if e["event"].startswith("stored model not loaded")]
    assert entry["tenant"] == "acme" and "not a tokenwarden model file" in entry["error"]


@pytest.mark.parametrize("file_is_newer", [True, False])
def test_the_newer_of_the_configured_file_and_the_stored_model_is_used(
    tmp_path: Path, file_is_newer: bool
) -> None:
    services = build_services(_settings(tmp_path))
    _traffic(services, 30)
    stored = _model(services).models["acme"]
    services.db.dispose()
    other = ModelDetector().fit(np.zeros((300, len(FEATURES))), trained_at=0.0)
    other.trained_at = stored.trained_at + (1.0 if file_is_newer else -1.0)
    path = tmp_path / "model.npz"
    ModelArtifact(tenants={"acme": other}).save(path)
    settings = _settings(tmp_path)
    settings.detectors["model"]["path"] = str(path)
    restarted = build_services(settings)
    expected = other if file_is_newer else stored
    assert _model(restarted).models["acme"].trained_at == expected.trained_at


def test_the_api_lists_each_tenants_stored_models_to_its_own_keys(tmp_path: Path) -> None:
    services = build_services(_settings(tmp_path))
    _traffic(services, 30)
    fitted = _model(services).models["acme"]
    services.db.dispose()
    with TestClient(create_app(_settings(tmp_path))) as client:
        app: Any = client.app
        acme = bearer(mint_key(app, tenant="acme", role="viewer"))
        beta = bearer(mint_key(app, tenant="beta", role="viewer"))
        everyone = bearer(mint_key(app))
        (item,) = client.get("/v1/models", headers=acme).json()["items"]
        assert (item["tenant"], item["rows"]) == ("acme", fitted.rows)
        assert datetime.fromisoformat(item["trained_at"]).timestamp() == fitted.trained_at
        assert item["bytes"] > 1000
        assert client.get("/v1/models", headers=everyone).json()["items"] == [item]
        assert client.get("/v1/models", headers=beta).json()["items"] == []
        r = client.get("/v1/models", params={"tenant": "acme"}, headers=beta)
        assert r.status_code == 404
        assert client.get("/v1/models").status_code == 401


def test_a_fit_that_ends_after_the_last_batch_is_saved_by_save_fitted(tmp_path: Path) -> None:
    """In a running service the fit runs in its own thread (``prepare``); a fit that ends
    after the last batch is saved by ``save_fitted`` (the worker's timer, a stop), and a
    store fault hands the model back for the next try."""
    services = build_services(_settings(tmp_path))
    detector = _model(services)
    fits = Deferred()
    prepare_fitting(services.stages.engine, fits)
    try:
        _traffic(services, 30)
        assert detector.models == {} and len(fits.queue) == 1
        fits.run()  # the fit ends after the last batch
        with services.db.connect() as conn:
            assert store.list_models(conn) == []
        broken = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
        with pytest.raises(sa.exc.OperationalError):
            save_fitted(services.stages.engine, broken, now=T0)
        assert save_fitted(services.stages.engine, services.db, now=T0) == ["acme"]
        assert "acme" in detector.models
        with services.db.connect() as conn:
            (row,) = store.list_models(conn)
        assert row.trained_at.timestamp() == detector.models["acme"].trained_at
        assert save_fitted(services.stages.engine, services.db, now=T0) == [], "saved once"
    finally:
        services.db.dispose()
