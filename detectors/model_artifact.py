"""A fitted ``model`` detector as data: each tenant's forest and what scoring needs, and the
file (or database value) that holds them.

The format is an ``.npz`` archive (numpy's zip of ``.npy`` arrays), read with
``allow_pickle=False``: a JSON header (``header``: the format name, ``MODEL_VERSION``, the
feature list, when and with which scikit-learn it was made, and per tenant its threshold,
training medians and ranges) and, per tenant ``i``, the forest's arrays (``t<i>.feature``
…, ``detectors.forest``) and optionally the rows it was fitted on (``t<i>.sample``: the
service keeps them in its store so a restart resumes the refit schedule, and ``tokenwarden
train --from-store`` refits from them). Nothing in it is code: unlike a pickled
scikit-learn model, a file or a database row an attacker wrote cannot run anything when it
is loaded — at worst it is refused (``ModelFileError``, naming what is wrong) or scores
badly. A file whose format, version or feature list differs is refused; version 1 files
(joblib pickles, before 2026-11-24) are not read: train again.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from detectors.features import FEATURES, N_FEATURES
from detectors.forest import ARRAYS, Forest, ForestError

MODEL_FORMAT = "tokenwarden-model"
MODEL_VERSION = 2
#: the most an archive may unpack to (a forest of 100 trees is ~0.5 MB, a sample of
#: 8,192 rows 0.7 MB): a bigger one is refused before it is read
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
#: how much a row beyond the training ranges adds to the forest's anomaly score
EXCESS_WEIGHT = 0.1


class ModelFileError(ValueError):
    """A model file that is not ours, was trained on another feature list, or is damaged."""


@dataclass(slots=True)
class TenantModel:
    """One tenant's forest and what it needs to score and explain.

    ``low``/``high``: each feature's ``gate_quantile`` range in the training rows. A row
    inside every range is taken as an inlier without being scored (most rows are: the
    gate is what makes the model cheap); ``gate_leak`` is the share of training rows over
    the threshold that the gate would have let through unscored (reported, ~0).
    """

    forest: Forest
    threshold: float
    medians: list[float]
    rows: int
    trained_at: float
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    gate_leak: float = 0.0

    def anomaly(self, rows: Any) -> Any:
        """The forest's score plus ``EXCESS_WEIGHT`` x how far (in training spans, at most
        1) a row lies outside the training ranges: a forest cannot tell a value beyond
        the largest it was trained on from that largest one."""
        import numpy as np

        score = self.forest.anomaly(rows)
        if self.low:
            low = np.asarray(self.low)
            high = np.asarray(self.high)
            span = np.maximum(high - low, 0.1)
            excess = (np.maximum(rows - high, 0.0) + np.maximum(low - rows, 0.0)) / span
            score = score + EXCESS_WEIGHT * np.minimum(excess.sum(axis=1), 1.0)
        return score


class _TenantHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str
    threshold: float
    medians: list[float]
    rows: int
    trained_at: float
    low: list[float]
    high: list[float]
    gate_leak: float
    denominator: float
    sample: bool = False

    @model_validator(mode="after")
    def _lengths(self) -> _TenantHeader:
        if len(self.medians) != N_FEATURES:
            raise ValueError(f"medians must list {N_FEATURES} features")
        if len(self.low) != len(self.high) or len(self.low) not in (0, N_FEATURES):
            raise ValueError(f"low and high must both list {N_FEATURES} features (or none)")
        return self


class _Header(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: str
    version: int
    features: list[str]
    created: str = ""
    sklearn: str = ""
    tenants: list[_TenantHeader]


@dataclass(slots=True)
class ModelArtifact:
    """What a model file holds: per tenant its model and, optionally, its training rows."""

    tenants: dict[str, TenantModel] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURES
    created: str = ""
    #: tenant -> the rows (float64, ``(n, N_FEATURES)``) its model was fitted on
    samples: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The ``.npz`` archive (module docstring)."""
        import numpy as np
        import sklearn  # type: ignore[import-untyped]

        arrays: dict[str, Any] = {}
        tenants = []
        for i, (name, m) in enumerate(sorted(self.tenants.items())):
            sample = self.samples.get(name)
            tenants.append(
                {
                    "name": name,
                    "threshold": m.threshold,
                    "medians": m.medians,
                    "rows": m.rows,
                    "trained_at": m.trained_at,
                    "low": m.low,
                    "high": m.high,
                    "gate_leak": m.gate_leak,
                    "denominator": m.forest.denominator,
                    "sample": sample is not None,
                }
            )
            for key, array in m.forest.arrays().items():
                arrays[f"t{i}.{key}"] = array
            if sample is not None:
                arrays[f"t{i}.sample"] = np.asarray(sample, dtype=np.float64)
        header = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "features": list(self.features),
            "created": self.created or datetime.now(UTC).isoformat(),
            "sklearn": sklearn.__version__,
            "tenants": tenants,
        }
        arrays["header"] = np.frombuffer(orjson.dumps(header), dtype=np.uint8)
        out = io.BytesIO()
        np.savez_compressed(out, allow_pickle=False, **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "model") -> ModelArtifact:
        """Read an archive ``to_bytes`` wrote; ``ModelFileError`` (naming ``source``) for
        anything else: not an archive, a pickle, another format, version or feature list,
        arrays that are not trees, a sample of the wrong shape."""
        import numpy as np

        try:
            archive = np.load(io.BytesIO(data), allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError):
            raise ModelFileError(
                f"{source} is not a tokenwarden model file (an .npz archive; files before "
                f"format version {MODEL_VERSION} were joblib pickles: train it again)"
            ) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{source} is a single array, not a tokenwarden model file")
        with archive:
            infos = archive.zip.infolist() if archive.zip is not None else []
            unpacked = sum(int(info.file_size) for info in infos)
            if unpacked > MAX_UNPACKED_BYTES:
                raise ModelFileError(
                    f"{source} unpacks to {unpacked} bytes, over {MAX_UNPACKED_BYTES}"
                )
            try:
                return cls._read(archive, source)
            except ModelFileError:
                raise
            except (KeyError, ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ModelFileError(f"{source} is damaged: {exc}") from None

    @classmethod
    def _read(cls, archive: Any, source: str) -> ModelArtifact:
        import numpy as np

        if "header" not in archive.files:
            raise ModelFileError(f"{source} is not a tokenwarden model file (no header)")
        try:
            raw = orjson.loads(archive["header"].tobytes())
        except orjson.JSONDecodeError:
            raise ModelFileError(f"{source}: its header is not JSON") from None
        if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"{source} is not a tokenwarden model file")
        if raw.get("version") != MODEL_VERSION:
            raise ModelFileError(
                f"{source} is model format version {raw.get('version')}, "
                f"this build reads {MODEL_VERSION}; train it again"
            )
        try:
            header = _Header.model_validate(raw)
        except ValidationError as exc:
            raise ModelFileError(f"{source}: bad header: {exc}") from None
        if tuple(header.features) != FEATURES:
            raise ModelFileError(
                f"{source} was trained on features {header.features}, "
                f"this build computes {list(FEATURES)}; train it again"
            )
        tenants: dict[str, TenantModel] = {}
        samples: dict[str, Any] = {}
        for i, t in enumerate(header.tenants):
            try:
                forest = Forest.from_arrays(
                    {key: archive[f"t{i}.{key}"] for key in ARRAYS},
                    denominator=t.denominator,
                    n_features=N_FEATURES,
                )
            except ForestError as exc:
                raise ModelFileError(f"{source}: tenant {t.name}: {exc}") from None
            tenants[t.name] = TenantModel(
                forest=forest,
                threshold=t.threshold,
                medians=t.medians,
                rows=t.rows,
                trained_at=t.trained_at,
                low=t.low,
                high=t.high,
                gate_leak=t.gate_leak,
            )
            if t.sample:
                sample = archive[f"t{i}.sample"]
                if (
                    sample.dtype != np.float64
                    or sample.ndim != 2
                    or sample.shape[1] != N_FEATURES
                    or not np.isfinite(sample).all()
                ):
                    raise ModelFileError(
                        f"{source}: tenant {t.name}: its sample must be finite float64 rows "
                        f"of {N_FEATURES} features"
                    )
                samples[t.name] = sample
        return cls(tenants=tenants, created=header.created, samples=samples)

    def save(self, path: Path) -> None:
        path.write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> ModelArtifact:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"model file {path} does not exist") from None
        return cls.from_bytes(data, source=str(path))
