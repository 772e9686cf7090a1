"""model: per-tenant IsolationForest, batch-scored, explained, saved with its features."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from detectors import (
    FEATURES,
    Engine,
    ModelArtifact,
    ModelConfig,
    ModelDetector,
    build_detectors,
)
from detectors.features import F_NET_NOVELTY, F_SCOPE_WEIGHT, Finding, Observation
from detectors.model_artifact import TenantModel
from tests.detectors.usage import T0, Deferred, engine_run, event

RNG = np.random.default_rng(3)


def normal_rows(n: int) -> Any:
    rows = np.zeros((n, len(FEATURES)))
    rows[:, 0:3] = RNG.normal(0.0, 0.3, (n, 3))
    rows[:, F_SCOPE_WEIGHT] = RNG.choice([0.2, 0.6], n)
    rows[:, F_NET_NOVELTY] = (RNG.random(n) < 0.02) * 0.3
    rows[:, -1] = 1.0
    return rows


def _observations(n: int, tenant: str = "acme") -> list[Observation]:
    out = []
    for i in range(n):
        obs = Observation(event(i, tenant=tenant))
        assert obs.row is not None
        obs.row[:] = list(normal_rows(1)[0])
        out.append(obs)
    return out


def test_an_outlier_row_is_flagged_with_its_top_features_in_one_call_per_batch() -> None:
    det = ModelDetector(ModelConfig(min_train_rows=100, auto_fit=False))
    det.models["acme"] = det.fit(normal_rows(3000), trained_at=0.0)
    calls: list[int] = []
    original = TenantModel.anomaly

    def counting(self: TenantModel, rows: Any) -> Any:
        calls.append(len(rows))
        return original(self, rows)

    batch = _observations(500)
    odd = batch[250]
    assert odd.row is not None
    odd.row[F_NET_NOVELTY] = 1.0
    odd.row[F_SCOPE_WEIGHT] = 1.0
    TenantModel.anomaly = counting  # type: ignore[method-assign]
    try:
        det.score_batch(batch, {})
    finally:
        TenantModel.anomaly = original  # type: ignore[method-assign]
    assert len(calls) <= 2, "one scoring call per tenant and batch (plus one to explain)"
    assert calls[0] < 500, "rows inside the training ranges are not scored"
    assert odd.findings is not None
    (finding,) = odd.findings
    assert finding.detector == "model" and 0 < finding.score <= det.config.max_score
    top = [f["feature"] for f in finding.evidence["top_features"]]
    assert top[0] == "net_novelty"
    assert "most unusual: " in finding.reason
    flagged = [o for o in batch if o.findings]
    assert len(flagged) <= 5


def test_it_fits_itself_once_a_tenant_has_enough_clean_rows() -> None:
    det = ModelDetector(ModelConfig(min_train_rows=200, reservoir_rows=400, min_train_seconds=600))
    det.score_batch(_observations(150), {})
    assert "acme" not in det.models
    det.score_batch(_observations(100), {})
    assert "acme" not in det.models, "not before the rows span min_train_seconds"
    det.score_batch([Observation(event(3600))], {})
    assert det.models["acme"].rows == 251
    assert det.reservoir_sizes() == {"acme": 251}


def test_it_runs_inside_the_engine_without_per_event_scoring() -> None:
    model = ModelDetector(ModelConfig(min_train_rows=100, min_train_seconds=600))
    engine = Engine([*build_detectors(["volume", "scope_drift", "destination", "burst"]), model])
    events = [event(i * 5.0, audience=f"https://api.t{i % 3}.example") for i in range(400)]
    engine_run(engine, events, {})
    assert model.models["acme"].rows >= 100
    assert model.detect(events[0], {}, events[0].time) == []


def _shifted(n: int, shift: float) -> list[Observation]:
    """Rows of ``normal_rows`` with the three rate features moved by ``shift``."""
    batch = _observations(n)
    for obs in batch:
        assert obs.row is not None
        obs.row[0] += shift
        obs.row[1] += shift
        obs.row[2] += shift
    return batch


def _flagged_share(det: ModelDetector, batch: list[Observation]) -> float:
    """The share of ``batch`` the model flagged."""
    det.score_batch(batch, {})
    return sum(1 for o in batch if any(f.detector == "model" for f in o.findings or ())) / len(
        batch
    )


@pytest.mark.parametrize("drift_ratio", [10.0, 0.0])
def test_a_model_the_traffic_has_drifted_from_is_refit_from_the_clean_rows(
    drift_ratio: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Fitted on one traffic, scored on traffic whose rates moved: it flags most rows,
    far more than the 0.1 % it was fitted to flag. With refit on drift it refits from
    the rows kept since (the ones it flagged too) once it has scored ``reservoir_rows``,
    and flags its share again; with ``drift_ratio = 0`` it goes on flagging until its
    scheduled refit (hours away)."""
    det = ModelDetector(
        ModelConfig(
            min_train_rows=200, reservoir_rows=1000, min_train_seconds=0, drift_ratio=drift_ratio
        )
    )
    det.models["acme"] = det.fit(normal_rows(1000), trained_at=T0.timestamp())
    caplog.set_level("INFO", logger="detectors.model")
    shares = [_flagged_share(det, _shifted(500, 1.0)) for _ in range(10)]
    assert min(shares[:2]) > 0.5
    if drift_ratio:
        assert max(shares[3:]) < 0.05, shares
        assert "refit on drift" in caplog.text
        assert det.models["acme"].trained_at > T0.timestamp()
    else:
        assert min(shares) > 0.5, shares
        assert "refit on drift" not in caplog.text
        assert det.models["acme"].trained_at == T0.timestamp()


def test_a_drift_refit_that_does_not_help_waits_twice_as_long_for_the_next() -> None:
    """Half the rows are far off and flagged by a usage detector too (so never learned):
    no refit can bring the share the model flags down. Refits come after 1,000, then
    2,000, 4,000, 8,000 rows scored (``reservoir_rows`` doubling), not every time
    ``min_train_rows`` clean rows came in."""
    det = ModelDetector(ModelConfig(min_train_rows=200, reservoir_rows=1000, min_train_seconds=0))
    det.models["acme"] = det.fit(normal_rows(1000), trained_at=T0.timestamp())
    fits: list[int] = []
    batches = 0
    fit = det.fit

    def counted(rows: Any, *, trained_at: float) -> TenantModel:
        fits.append(batches)
        return fit(rows, trained_at=trained_at)

    det.fit = counted  # type: ignore[method-assign]
    while batches < 30:
        batches += 1
        batch = _observations(500)
        for obs in batch[::2]:
            assert obs.row is not None
            obs.row[F_NET_NOVELTY] = 1.0
            obs.row[0] = 6.0
            obs.add(Finding("volume", 0.9, "a spike"))
        assert _flagged_share(det, batch) >= 0.5
    assert fits == [2, 6, 14, 30]


def test_the_reservoir_starts_over_at_each_fit() -> None:
    """After a long history, a refit learns mostly the rows since the previous fit:
    10 reservoirs' worth of new rows leave few old ones (algorithm R counted from the
    fit), where counting from the first row would keep nearly all of them."""
    det = ModelDetector(
        ModelConfig(min_train_rows=100, reservoir_rows=500, min_train_seconds=0, drift_ratio=0)
    )
    det._keep("acme", np.zeros((50_000, len(FEATURES))), T0.timestamp())
    det.fit_all(trained_at=T0.timestamp())
    det._keep("acme", np.ones((5_000, len(FEATURES))), T0.timestamp())
    rows = det._reservoirs["acme"].rows
    new_share = float((rows[:, 0] == 1.0).mean())
    assert new_share > 0.85, new_share


def test_a_fitted_model_is_handed_out_once_with_its_rows_and_adopted_back() -> None:
    """What the service saves (``take_fitted``) is what a restarted one resumes from
    (``adopt``): the same scores, the rows to refit from, the schedule from ``trained_at``."""
    cfg = ModelConfig(min_train_rows=200, reservoir_rows=400, min_train_seconds=600)
    det = ModelDetector(cfg)
    assert det.take_fitted() is None
    det.score_batch(_observations(250), {})
    det.score_batch([Observation(event(3600))], {})
    saved = det.take_fitted()
    assert saved is not None and set(saved.tenants) == {"acme"}
    assert saved.samples["acme"].shape == (251, len(FEATURES))
    assert det.take_fitted() is None, "handed out once"

    restarted = ModelDetector(cfg, ModelArtifact.from_bytes(saved.to_bytes()))
    probe = np.vstack([normal_rows(30), np.full((2, len(FEATURES)), 3.0)])
    assert np.array_equal(
        restarted.models["acme"].anomaly(probe), det.models["acme"].anomaly(probe)
    )
    assert restarted.reservoir_sizes() == {"acme": 251}
    assert restarted.take_fitted() is None, "an adopted model is not saved again"
    # the refit schedule goes on from trained_at: not before refit_interval_seconds
    trained_at = det.models["acme"].trained_at
    restarted.score_batch(_observations(250), {})
    assert restarted.models["acme"].trained_at == trained_at
    late = _observations(250)
    for obs in late:
        obs.t = trained_at + cfg.refit_interval_seconds
    restarted.score_batch(late, {})
    assert restarted.models["acme"].trained_at == trained_at + cfg.refit_interval_seconds


def test_adopt_keeps_the_newer_of_two_models() -> None:
    det = ModelDetector(ModelConfig(min_train_rows=100))
    det.models["acme"] = det.fit(normal_rows(300), trained_at=500.0)
    older = ModelArtifact(tenants={"acme": det.fit(normal_rows(300), trained_at=100.0)})
    newer = ModelArtifact(tenants={"acme": det.fit(normal_rows(300), trained_at=900.0)})
    assert det.adopt(older) == []
    assert det.models["acme"].trained_at == 500.0
    assert det.adopt(newer) == ["acme"]
    assert det.models["acme"].trained_at == 900.0


def test_refit_from_fits_each_tenant_that_kept_enough_rows_with_the_current_settings() -> None:
    stored = ModelArtifact(samples={"acme": normal_rows(300), "globex": normal_rows(50)})
    stored.tenants["acme"] = ModelDetector(ModelConfig(min_train_rows=100)).fit(
        normal_rows(300), trained_at=42.0
    )
    det = ModelDetector(ModelConfig(min_train_rows=100, n_estimators=7))
    refit = det.refit_from(stored)
    assert set(refit.tenants) == {"acme"}, "globex kept too few rows"
    assert len(refit.tenants["acme"].forest.roots) == 7
    assert refit.tenants["acme"].trained_at == 42.0
    assert refit.samples["acme"] is stored.samples["acme"]


@pytest.mark.parametrize(("auto_fit", "imported"), [(True, True), (False, False)])
def test_prepare_imports_what_fitting_needs_before_the_first_fit(
    auto_fit: bool, imported: bool
) -> None:
    """A service calls ``prepare`` at start: scikit-learn (~0.7 s to import) is then not
    imported inside the batch that triggers a tenant's first fit. (In a fresh interpreter:
    this one may have imported it already.)"""
    code = (
        "import sys\n"
        "from detectors import ModelConfig, ModelDetector\n"
        "assert 'sklearn.ensemble' not in sys.modules\n"
        f"ModelDetector(ModelConfig(auto_fit={auto_fit})).prepare()\n"
        "print('sklearn.ensemble' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == str(imported)


BACKGROUND = ModelConfig(min_train_rows=200, reservoir_rows=400, min_train_seconds=600)


def test_a_fit_in_the_background_leaves_the_batch_and_a_later_batch_takes_it() -> None:
    """With an executor (a running service), the batch that triggers a fit only hands it
    over; the tenant goes on as before (here: no model yet) until a batch after the fit
    ended takes the model — the same model the batch itself would have fitted."""
    here = ModelDetector(BACKGROUND)
    det = ModelDetector(BACKGROUND)
    fits = Deferred()
    det.prepare(fits)
    first = _observations(250)
    trigger = [Observation(event(3600))]
    for d in (here, det):
        d.score_batch(first, {})
        d.score_batch(trigger, {})
    assert "acme" in here.models
    assert det.models == {} and len(fits.queue) == 1
    assert det.take_fitted() is None
    det.score_batch(_observations(10), {})
    assert len(fits.queue) == 1, "no second fit while one is running"
    fits.run()
    assert det.models == {}, "taken by the next batch, not by the thread"
    det.score_batch([], {})
    saved = det.take_fitted()
    assert saved is not None and set(saved.tenants) == {"acme"}
    # the rows it was fitted on, not the reservoir as it is now (10 more rows came since)
    assert saved.samples["acme"].shape == (251, len(FEATURES))
    probe = np.vstack([normal_rows(30), np.full((2, len(FEATURES)), 3.0)])
    assert np.array_equal(det.models["acme"].anomaly(probe), here.models["acme"].anomaly(probe))
    assert det.take_fitted() is None, "handed out once"


def test_a_background_fit_that_fails_is_logged_and_tried_again_when_due(
    caplog: pytest.LogCaptureFixture,
) -> None:
    det = ModelDetector(BACKGROUND)
    fits = Deferred()
    det.prepare(fits)
    failing = [True]
    fit = det.fit

    def flaky(rows: Any, *, trained_at: float) -> Any:
        if failing[0]:
            raise MemoryError("no room for a forest")
        return fit(rows, trained_at=trained_at)

    det.fit = flaky  # type: ignore[method-assign]
    det.score_batch(_observations(250), {})
    det.score_batch([Observation(event(3600))], {})
    fits.run()
    with caplog.at_level("ERROR", logger="detectors.model"):
        det.score_batch([Observation(event(3601))], {})
    assert "fitting the model of tenant acme failed" in caplog.text
    assert det.models == {} and det.take_fitted() is None
    assert len(fits.queue) == 1, "due again: handed over again"
    failing[0] = False
    fits.run()
    det.score_batch([], {})
    assert "acme" in det.models


def test_a_background_fit_older_than_an_adopted_model_is_dropped() -> None:
    """A stored model adopted while a fit runs (trained later) stays."""
    det = ModelDetector(BACKGROUND)
    fits = Deferred()
    det.prepare(fits)
    det.score_batch(_observations(250), {})
    det.score_batch([Observation(event(3600))], {})
    newer = det.fit(normal_rows(300), trained_at=T0.timestamp() + 7200)
    det.adopt(ModelArtifact(tenants={"acme": newer}))
    fits.run()
    det.score_batch([], {})
    assert det.models["acme"] is newer
    assert det.take_fitted() is None
