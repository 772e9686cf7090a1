"""The learned outlier score: an IsolationForest per tenant over the usage feature rows.

Features: the row the usage detectors write for every ``token.used``
(``detectors.features.FEATURES``: call rates over baseline at 1 min / 15 min / 1 h, scope
novelty and weight, network novelty and switch rate, user-agent and destination novelty,
distinct tools over the usual, how typical the hour of day is).

* **Scoring is batched:** the Engine hands the model every row of a batch at once
  (``score_batch``); the rows of a tenant outside its training ranges are scored in one
  numpy walk of all its trees (``detectors.forest``; scikit-learn's ``score_samples`` costs
  3.6-8 ms per call in dispatch alone at 100 trees, which per-tenant calls on every batch
  cannot afford). In the embedded service the Engine runs in a worker
  thread, off the event loop.
* **Score:** the forest's anomaly score ``a`` (0..1, higher = easier to isolate) against the
  tenant's ``quantile`` (99.9 %) of its training scores ``q``: ``score = max_score *
  min(1, (a - q) / span)``, nothing below ``q``. ``a`` is the forest's score plus 0.1 x how
  far (in training spans) the row lies beyond the training ranges — a forest cannot tell a
  value beyond the largest it saw from that largest one. ``max_score`` (0.25) keeps the
  model a corroborating voice: under the Engine's ``accumulate_min`` (0.3), its findings
  never add up over time by themselves, and with one moderate finding (a travelling user's
  new network, 0.45) it stays under the threshold; with a second one it tips it over.
* **Explanations:** for a flagged row, each feature in turn is set to its training median
  and the row rescored (all such rows of a batch in one call); the features whose reset
  lowers the score most are named in the reason (``top_features`` in the evidence).
* **Training:** ``tokenwarden train --from FILE.ndjson --out model.npz`` replays history
  through the usage detectors and fits one forest per tenant on the rows none of them
  flagged (score >= 0.7 or critical; moderate findings stay in, or the forest could not
  split on the novelty features at all). Rows the model itself flagged are learned too: a
  forest shrugs off the 0.1 % a current model flags, while holding them out left a model
  that the traffic had moved away from to learn only the rows still like its old training
  (one simulated tenant's refit model flagged 71 % of its calls). Without a trained file
  the detector fits itself once a tenant has ``min_train_rows`` clean rows over
  ``min_train_seconds`` of event time (a reservoir sample of ``reservoir_rows``), and
  refits every ``refit_interval_seconds`` of event time; a fit takes ~0.15 s, in the batch
  that triggers it — or, in a running service (``prepare`` with an executor), in a thread
  of its own, the tenant's current model scoring until a later batch takes the new one.
  The reservoir starts over at each fit
  (Vitter's algorithm R counted from the fit: of ``n`` rows since, each enters with
  probability ``reservoir_rows / (reservoir_rows + n)``), so a refit learns mostly the
  traffic since the last one, not months-old rows.
* **Refit on drift:** a model scored against traffic it no longer describes flags far more
  than the ``1 - quantile`` share of rows it was fitted to flag: fitted on a tenant's first
  hour, before its agents' rate features had any baseline, it flagged 8-50 % of the
  simulated calls of the next hours (``tokenwarden evaluate``), and in
  ``bench/detectors.py`` 11-17 %, each flagged row paying for its explanation. When, over
  at least ``reservoir_rows`` rows scored since the last fit, it flags more than
  ``drift_ratio`` times that share, it is refitted at once from the rows kept since; a
  drift refit that does not help waits twice as many rows for the next (back to
  ``reservoir_rows`` after a scheduled refit). ``drift_ratio = 0`` turns it off.
* **Saving and loading:** a fitted model is data, not code (``detectors.model_artifact``:
  the forest as arrays, ``detectors.forest``, in an ``.npz`` archive read without pickle).
  ``path`` (``[detectors.model] path = "…"``) is loaded when the detector is built; the
  service then ``adopt``s each tenant's stored model that is newer, with the rows it was
  fitted on, so a restart scores at once and refits on schedule from where it was. What
  this detector fits, ``take_fitted`` hands out once, to be saved with the batch that
  fitted it (``tokenwarden.learned_models``). ``refit_from`` fits stored rows again with
  the current parameters (``tokenwarden train --from-store``).

State: none in the state mapping; the forests (~0.7 MB per tenant at 100 trees in memory,
~0.1 MB stored) and the training reservoirs (``reservoir_rows`` * 11 floats per tenant)
live in the detector, and in the store from each fit on.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from detectors.base import State
from detectors.detection import Detection
from detectors.features import F_HOUR, FEATURES, N_FEATURES, Finding, Observation
from detectors.forest import Forest
from detectors.model_artifact import ModelArtifact, TenantModel
from detectors.volume import hour_factor_of, population_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Parameters (``[detectors.model]``)."""

    path: str | None = None
    n_estimators: int = 100
    max_samples: int = 256
    min_train_rows: int = 2000
    min_train_seconds: float = 3600.0
    reservoir_rows: int = 8192
    refit_interval_seconds: float = 6 * 3600.0
    auto_fit: bool = True
    quantile: float = 0.999
    span: float = 0.1
    max_score: float = 0.25
    top_features: int = 3
    gate_quantile: float = 0.005
    drift_ratio: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_estimators < 1 or self.max_samples < 2:
            raise ValueError("n_estimators >= 1 and max_samples >= 2")
        if self.min_train_rows < 10 or self.reservoir_rows < self.min_train_rows:
            raise ValueError("min_train_rows >= 10 and reservoir_rows >= min_train_rows")
        if not 0.5 <= self.quantile < 1.0 or self.span <= 0:
            raise ValueError("quantile within 0.5..1 and span > 0")
        if not 0.0 <= self.max_score <= 1.0:
            raise ValueError("max_score must be within 0..1")
        if self.drift_ratio != 0 and self.drift_ratio <= 1:
            raise ValueError("drift_ratio must be > 1 (or 0: no refit on drift)")


@dataclass(slots=True)
class _Reservoir:
    rows: Any  # numpy array (capacity, N_FEATURES)
    first: float | None = None  # event time of the first row kept
    filled: int = 0
    seen: int = 0
    since_fit: int = 0
    #: rows the current model scored since it was fitted, and how many it flagged
    scored: int = 0
    flagged: int = 0
    #: drift refits since the last scheduled fit (each doubles the rows the next one needs)
    drift_refits: int = 0

    def fitted(self, *, drift: bool) -> None:
        """A model was just fitted from these rows: count afresh, and let the rows that
        come next replace the sample (algorithm R restarted at the fit)."""
        self.since_fit = self.scored = self.flagged = 0
        self.seen = self.filled
        self.drift_refits = self.drift_refits + 1 if drift else 0


class ModelDetector:
    """A learned outlier score (IsolationForest per tenant) over the usage features,
    scored in batches; its findings name the features that made the row unusual."""

    name: ClassVar[str] = "model"

    def __init__(
        self, config: ModelConfig | None = None, artifact: ModelArtifact | None = None
    ) -> None:
        self.config = config or ModelConfig()
        if artifact is None and self.config.path:
            artifact = ModelArtifact.load(Path(self.config.path))
        self.models: dict[str, TenantModel] = {}
        self._reservoirs: dict[str, _Reservoir] = {}
        self._rng: Any = None  # numpy Generator, made on first use
        #: tenants fitted since the last ``take_fitted``, and the rows each was fitted on
        self._fitted: set[str] = set()
        self._samples: dict[str, Any] = {}
        #: where fits run (``prepare``): None, in the batch that triggers them
        self._executor: Executor | None = None
        #: fits running in the executor: tenant -> (the model to come, its rows)
        self._pending: dict[str, tuple[Future[TenantModel], Any]] = {}
        if artifact is not None:
            self.adopt(artifact)

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> ModelDetector:
        return cls(ModelConfig(**params))

    def detect(self, event: Any, state: State, now: datetime) -> list[Detection]:
        """Nothing per event: the model is scored in batches by the Engine
        (``score_batch``) — one row per call would cost ~3.6 ms."""
        return []

    def sweep(self, state: State, now: datetime) -> int:
        return 0

    # -- batch scoring ----------------------------------------------------------------

    def score_batch(self, observations: Sequence[Observation], state: State) -> None:
        """Score every row of the batch (one call per tenant); attach findings to the
        observations; keep clean rows for (re)fitting; refit when due."""
        if self._pending:
            self._collect()
        if not observations:
            return
        import numpy as np

        # per tenant: its observations, their rows (flat) and whether each is clean
        by_tenant: dict[str, tuple[list[Observation], list[float], list[bool]]] = {}
        hours: dict[tuple[str, str, int], float] = {}
        for obs in observations:
            row = obs.row
            if row is None:
                continue
            tenant = obs.tenant
            hk = (tenant, obs.agent, obs.hour)
            factor = hours.get(hk)
            if factor is None:
                pop = state.get(population_key(tenant, obs.agent))
                factor = hours[hk] = hour_factor_of(pop, obs.t, obs.hour)
            row[F_HOUR] = factor
            entry = by_tenant.get(tenant)
            if entry is None:
                entry = by_tenant[tenant] = ([], [], [])
            entry[0].append(obs)
            entry[1].extend(row)
            # the usage detectors' findings only (the model's own come later): a row the
            # model flags is still learned (module docstring, "Training")
            entry[2].append(obs.findings is None or _clean(obs))
        for tenant, (group, flat, clean_rows) in by_tenant.items():
            model = self.models.get(tenant)
            rows = np.array(flat, dtype=np.float64).reshape(len(group), N_FEATURES)
            clean = np.array(clean_rows, dtype=bool)
            flagged = 0
            if model is not None:
                over = self._score(model, group, rows)
                flagged = int(over.sum())
            self._keep(tenant, rows[clean], group[0].t)
            if self.config.auto_fit:
                self._maybe_fit(tenant, group[-1].t, scored=len(group), flagged=flagged)

    def _score(self, model: TenantModel, group: list[Observation], rows: Any) -> Any:
        import numpy as np

        cfg = self.config
        over = np.zeros(len(rows), dtype=bool)
        if model.low:
            outside = ((rows < np.asarray(model.low)) | (rows > np.asarray(model.high))).any(axis=1)
            candidates = np.flatnonzero(outside)
        else:
            candidates = np.arange(len(rows))
        if len(candidates) == 0:
            return over
        anomaly = np.zeros(len(rows))
        anomaly[candidates] = model.anomaly(rows[candidates])
        over = anomaly > model.threshold
        idx = np.flatnonzero(over)
        if len(idx) == 0:
            return over
        # explanations: each flagged row with one feature reset to its training median
        base = rows[idx]
        probes = np.repeat(base, N_FEATURES, axis=0)
        cols = np.tile(np.arange(N_FEATURES), len(idx))
        probes[np.arange(len(probes)), cols] = np.asarray(model.medians)[cols]
        drops = (anomaly[idx].repeat(N_FEATURES) - model.anomaly(probes)).reshape(
            len(idx), N_FEATURES
        )
        for j, i in enumerate(idx):
            obs = group[int(i)]
            a = float(anomaly[i])
            score = cfg.max_score * min(1.0, (a - model.threshold) / cfg.span)
            order = np.argsort(-drops[j])[: cfg.top_features]
            top = [
                {
                    "feature": FEATURES[k],
                    "value": round(float(base[j, k]), 3),
                    "median": round(model.medians[k], 3),
                    "contribution": round(float(drops[j, k]), 4),
                }
                for k in order
                if drops[j, k] > 0
            ]
            names = ", ".join(
                f"{f['feature']}={f['value']:g} (usually {f['median']:g})" for f in top
            )
            event = obs.event
            reason = (
                f"{obs.who} on {event.audience or 'an unnamed API'}: unusual call for tenant "
                f"{event.tenant} (outlier score {a:.3f} over its {cfg.quantile:.1%} "
                f"quantile {model.threshold:.3f}); most unusual: {names or 'no single feature'}"
            )
            evidence = {
                "anomaly": round(a, 4),
                "threshold": round(model.threshold, 4),
                "top_features": top,
                "trained_rows": model.rows,
                "gate_leak": model.gate_leak,
            }
            obs.add(Finding(self.name, score, reason, evidence))
        return over

    # -- training ---------------------------------------------------------------------

    def _keep(self, tenant: str, rows: Any, t: float) -> None:
        """Reservoir sampling (algorithm R), vectorised over the batch."""
        import numpy as np

        m = len(rows)
        if m == 0:
            return
        if self._rng is None:
            self._rng = np.random.default_rng(self.config.seed)
        res = self._reservoirs.get(tenant)
        cap = self.config.reservoir_rows
        if res is None:
            res = _Reservoir(rows=np.empty((cap, N_FEATURES), dtype=np.float64), first=t)
            self._reservoirs[tenant] = res
        take = min(m, cap - res.filled)
        if take > 0:
            res.rows[res.filled : res.filled + take] = rows[:take]
            res.filled += take
        rest = rows[take:]
        if len(rest):
            seen = res.seen + take + np.arange(1, len(rest) + 1)
            slots = (self._rng.random(len(rest)) * seen).astype(np.int64)
            keep = slots < cap
            res.rows[slots[keep]] = rest[keep]
        res.seen += m
        res.since_fit += m

    def _maybe_fit(self, tenant: str, t: float, *, scored: int, flagged: int) -> None:
        """Fit the tenant's first model, or refit it when its interval is up or it has
        drifted (module docstring); ``scored``/``flagged``: the batch's rows and how many
        of them the current model flagged."""
        cfg = self.config
        res = self._reservoirs.get(tenant)
        if res is None:
            return
        res.scored += scored
        res.flagged += flagged
        if res.filled < cfg.min_train_rows or tenant in self._pending:
            return
        model = self.models.get(tenant)
        if model is None:
            if t - (res.first or t) < cfg.min_train_seconds:
                return  # a first fit needs history spanning min_train_seconds
            self._fit_tenant(tenant, res, t, drift=False)
            return
        if res.since_fit < cfg.min_train_rows:
            return
        if t - model.trained_at >= cfg.refit_interval_seconds:
            drift = False
        elif (
            cfg.drift_ratio
            and res.scored >= cfg.reservoir_rows << min(res.drift_refits, 20)
            and res.flagged > cfg.drift_ratio * (1.0 - cfg.quantile) * res.scored
        ):
            drift = True
            log.info(
                "model of tenant %s refit on drift: it flagged %d of %d rows (%.2f %%, "
                "fitted to flag %.2f %%)",
                tenant,
                res.flagged,
                res.scored,
                100.0 * res.flagged / res.scored,
                100.0 * (1.0 - cfg.quantile),
            )
        else:
            return
        self._fit_tenant(tenant, res, t, drift=drift)

    def _fit_tenant(
        self, tenant: str, res: _Reservoir, t: float, *, drift: bool, here: bool = False
    ) -> None:
        """Fit the tenant's model on its reservoir and start counting afresh: in the
        executor ``prepare`` gave (the model is taken by a later batch, ``_collect``; the
        current one, if any, scores until then), else (or ``here``) at once."""
        rows = res.rows[: res.filled].copy()
        res.fitted(drift=drift)
        if self._executor is None or here:
            self._install(tenant, self.fit(rows, trained_at=t), rows)
        else:
            self._pending[tenant] = (self._executor.submit(self.fit, rows, trained_at=t), rows)

    def _install(self, tenant: str, model: TenantModel, rows: Any) -> None:
        self.models[tenant] = model
        self._samples[tenant] = rows
        self._fitted.add(tenant)

    def _collect(self) -> None:
        """Take the models fitted in the executor since the last look. A fit that failed
        is logged and left: the tenant keeps its model and fits again when due; a model
        ``adopt`` found newer meanwhile is kept."""
        for tenant, (future, rows) in list(self._pending.items()):
            if not future.done():
                continue
            del self._pending[tenant]
            try:
                model = future.result()
            except Exception:
                log.exception("fitting the model of tenant %s failed", tenant)
                continue
            current = self.models.get(tenant)
            if current is None or current.trained_at <= model.trained_at:
                self._install(tenant, model, rows)

    # -- saving and loading -----------------------------------------------------------

    def adopt(self, artifact: ModelArtifact) -> list[str]:
        """Take the artifact's model of each tenant that has none here or an older one
        (by ``trained_at``, event time), and the rows it was fitted on as the tenant's
        sample to refit from (the refit schedule goes on from ``trained_at``). Returns
        the tenants taken."""
        import numpy as np

        taken = []
        cap = self.config.reservoir_rows
        for tenant, model in artifact.tenants.items():
            current = self.models.get(tenant)
            if current is not None and current.trained_at >= model.trained_at:
                continue
            self.models[tenant] = model
            taken.append(tenant)
            sample = artifact.samples.get(tenant)
            if sample is None:
                continue
            rows = np.empty((cap, N_FEATURES), dtype=np.float64)
            kept = sample[:cap]
            rows[: len(kept)] = kept
            res = _Reservoir(rows=rows, first=model.trained_at, filled=len(kept))
            res.fitted(drift=False)
            self._reservoirs[tenant] = res
        return taken

    def take_fitted(self) -> ModelArtifact | None:
        """The tenants' models fitted since the last call, with the rows each was fitted
        on (to save: ``adopt`` takes them back), or None."""
        if self._pending:
            self._collect()
        if not self._fitted:
            return None
        tenants = sorted(self._fitted & set(self.models))
        self._fitted.clear()
        samples, self._samples = self._samples, {}
        return ModelArtifact(
            tenants={t: self.models[t] for t in tenants},
            samples={t: samples[t] for t in tenants if t in samples and len(samples[t])},
        )

    def finish_fits(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the fits running in the executor, and take
        those that ended (at a service's stop: ``take_fitted`` then hands them out)."""
        if self._pending:
            wait([future for future, _ in self._pending.values()], timeout=timeout)
            self._collect()

    def hand_back(self, artifact: ModelArtifact) -> None:
        """Models ``take_fitted`` handed out that could not be saved: handed out again by
        the next ``take_fitted`` (unless a newer fit replaced them meanwhile)."""
        for tenant, model in artifact.tenants.items():
            if self.models.get(tenant) is model:
                self._fitted.add(tenant)
                if tenant in artifact.samples:
                    self._samples.setdefault(tenant, artifact.samples[tenant])

    def refit_from(
        self, artifact: ModelArtifact, *, trained_at: float | None = None
    ) -> ModelArtifact:
        """Fit every tenant of ``artifact`` that kept enough rows, from those rows, with
        this detector's configuration (``tokenwarden train --from-store``)."""
        fitted = ModelArtifact()
        for tenant, sample in artifact.samples.items():
            if len(sample) < self.config.min_train_rows:
                continue
            old = artifact.tenants.get(tenant)
            at = trained_at if trained_at is not None else (old.trained_at if old else 0.0)
            fitted.tenants[tenant] = self.fit(sample, trained_at=at)
            fitted.samples[tenant] = sample
        return fitted

    def prepare(self, executor: Executor | None = None) -> None:
        """For a long-running service, at its start: import scikit-learn now (~0.7 s here)
        rather than inside the batch that triggers a tenant's first fit; with an
        ``executor`` (one thread is enough), fit there from now on — a fit takes
        ~0.15 s, which stalled the batch that triggered it (and every event queued
        behind it); the tenant's current model scores until a later batch takes the new
        one. Without ``prepare`` (evaluation, training, tests) a fit runs in its batch,
        so a replay gives the same detections every time."""
        if self.config.auto_fit:
            importlib.import_module("sklearn.ensemble")
            self._executor = executor

    def fit(self, rows: Any, *, trained_at: float) -> TenantModel:
        """Fit one tenant's forest on clean rows."""
        import numpy as np
        from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]

        cfg = self.config
        forest = IsolationForest(
            n_estimators=cfg.n_estimators,
            max_samples=min(cfg.max_samples, len(rows)),
            random_state=cfg.seed,
            n_jobs=1,
        )
        forest.fit(rows)
        packed = Forest.of(forest, N_FEATURES)
        low = np.quantile(rows, cfg.gate_quantile, axis=0)
        high = np.quantile(rows, 1.0 - cfg.gate_quantile, axis=0)
        model = TenantModel(packed, 0.0, [], len(rows), trained_at, list(low), list(high))
        anomaly = model.anomaly(rows)
        threshold = float(np.quantile(anomaly, cfg.quantile))
        over = anomaly > threshold
        inside = ~((rows < low) | (rows > high)).any(axis=1)
        leak = float((over & inside).sum() / max(1, over.sum()))
        return TenantModel(
            forest=packed,
            threshold=threshold,
            medians=[float(v) for v in np.median(rows, axis=0)],
            rows=len(rows),
            trained_at=trained_at,
            low=[float(v) for v in low],
            high=[float(v) for v in high],
            gate_leak=round(leak, 4),
        )

    def fit_all(self, *, trained_at: float) -> ModelArtifact:
        """Fit every tenant that has enough clean rows; the models fitted, with their rows
        (``take_fitted``)."""
        for tenant, res in self._reservoirs.items():
            if res.filled >= self.config.min_train_rows:
                self._fit_tenant(tenant, res, trained_at, drift=False, here=True)
        return self.take_fitted() or ModelArtifact()

    def reservoir_sizes(self) -> dict[str, int]:
        return {tenant: res.filled for tenant, res in self._reservoirs.items()}


def _clean(obs: Observation) -> bool:
    """A row to learn from: no detector flagged it (moderate findings are kept — the forest
    can only split on a feature that varies in its training rows)."""
    if obs.findings is None:
        return True
    return all(f.score < 0.7 and not f.critical for f in obs.findings)
