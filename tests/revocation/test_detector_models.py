"""detector_models: fitted models kept in the store, newest first, damaged rows named."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa

from detectors import FEATURES, ModelArtifact, ModelConfig, ModelDetector
from revocation import store
from revocation.tables import detector_models
from tests.detectors.test_model import normal_rows

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _artifact(**trained_at: float) -> ModelArtifact:
    det = ModelDetector(ModelConfig(min_train_rows=100, n_estimators=10))
    out = ModelArtifact()
    for tenant, at in trained_at.items():
        out.samples[tenant] = normal_rows(200)
        out.tenants[tenant] = det.fit(out.samples[tenant], trained_at=at)
    return out


def test_models_round_trip_through_the_store_one_row_per_tenant(engine: sa.Engine) -> None:
    saved = _artifact(acme=1000.0, globex=2000.0)
    with engine.begin() as conn:
        assert store.save_models(conn, models=store.encode_models(saved), now=NOW) == [
            "acme",
            "globex",
        ]
    with engine.connect() as conn:
        loaded, errors = store.load_models(conn)
        listed = store.list_models(conn)
        only, _ = store.load_models(conn, tenants=["globex"])
    assert errors == {}
    assert set(loaded.tenants) == {"acme", "globex"} and set(only.tenants) == {"globex"}
    probe = np.vstack([normal_rows(10), np.full((2, len(FEATURES)), 5.0)])
    for tenant in ("acme", "globex"):
        assert np.array_equal(
            loaded.tenants[tenant].anomaly(probe), saved.tenants[tenant].anomaly(probe)
        )
        assert np.array_equal(loaded.samples[tenant], saved.samples[tenant])
    assert [(m.tenant, m.trained_at, m.rows, m.saved_at) for m in listed] == [
        ("acme", datetime.fromtimestamp(1000.0, UTC), 200, NOW),
        ("globex", datetime.fromtimestamp(2000.0, UTC), 200, NOW),
    ]
    assert all(m.size > 1000 for m in listed)


def test_an_older_model_does_not_replace_a_newer_one(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        store.save_models(conn, models=store.encode_models(_artifact(acme=5000.0)), now=NOW)
        assert (
            store.save_models(conn, models=store.encode_models(_artifact(acme=4000.0)), now=NOW)
            == []
        )
        assert store.save_models(
            conn, models=store.encode_models(_artifact(acme=6000.0)), now=NOW
        ) == ["acme"]
    with engine.connect() as conn:
        loaded, _ = store.load_models(conn)
    assert loaded.tenants["acme"].trained_at == 6000.0


def test_a_damaged_row_is_named_and_the_others_still_load(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        store.save_models(
            conn, models=store.encode_models(_artifact(acme=1.0, globex=2.0, initech=3.0)), now=NOW
        )
        conn.execute(
            sa.update(detector_models)
            .where(detector_models.c.tenant == "acme")
            .values(artifact=b"\x80\x04garbage")
        )
        # a row whose archive holds another tenant's model
        other = _artifact(hooli=4.0).to_bytes()
        conn.execute(
            sa.update(detector_models)
            .where(detector_models.c.tenant == "initech")
            .values(artifact=other)
        )
    with engine.connect() as conn:
        loaded, errors = store.load_models(conn)
    assert set(loaded.tenants) == {"globex"}
    assert "the stored model of acme is not a tokenwarden model file" in errors["acme"]
    assert "holds tenants ['hooli']" in errors["initech"]
