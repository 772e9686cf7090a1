"""model_artifact: the pickle-free model file, and what it refuses."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from detectors import (
    FEATURES,
    ModelArtifact,
    ModelConfig,
    ModelDetector,
    ModelFileError,
    model_artifact,
)
from tests.detectors.test_model import normal_rows


@pytest.fixture(scope="module")
def artifact() -> ModelArtifact:
    det = ModelDetector(ModelConfig(min_train_rows=100))
    sample = normal_rows(600)
    return ModelArtifact(
        tenants={
            "acme": det.fit(sample, trained_at=123.0),
            "globex": det.fit(normal_rows(300), trained_at=5.0),
        },
        samples={"acme": sample},
    )


def test_a_model_file_round_trips_with_its_sample(tmp_path: Path, artifact: ModelArtifact) -> None:
    path = tmp_path / "model.npz"
    artifact.save(path)
    loaded = ModelDetector.from_config({"path": str(path)})
    assert set(loaded.models) == {"acme", "globex"}
    assert loaded.models["acme"].trained_at == 123.0
    probe = np.vstack([normal_rows(20), np.full((3, len(FEATURES)), 4.0)])
    for tenant in ("acme", "globex"):
        assert np.array_equal(
            loaded.models[tenant].anomaly(probe), artifact.tenants[tenant].anomaly(probe)
        )
    again = ModelArtifact.load(path)
    assert np.array_equal(again.samples["acme"], artifact.samples["acme"])
    assert "globex" not in again.samples


def _members(artifact: ModelArtifact) -> dict[str, Any]:
    with np.load(io.BytesIO(artifact.to_bytes()), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _pack(members: dict[str, Any], *, allow_pickle: bool = False) -> bytes:
    out = io.BytesIO()
    np.savez(out, allow_pickle=allow_pickle, **members)
    return out.getvalue()


def _with_header(artifact: ModelArtifact, **changes: Any) -> bytes:
    members = _members(artifact)
    header = orjson.loads(members["header"].tobytes())
    header.update(changes)
    members["header"] = np.frombuffer(orjson.dumps(header), dtype=np.uint8)
    return _pack(members)


class _Exploit:
    """Unpickling this writes a file: what a pickled model file could do."""

    marker: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


def test_a_pickle_inside_the_archive_is_refused_and_never_run(
    tmp_path: Path, artifact: ModelArtifact
) -> None:
    marker = tmp_path / "pwned"
    _Exploit.marker = str(marker)
    members = _members(artifact)
    members["t0.feature"] = np.array([_Exploit()], dtype=object)
    with pytest.raises(ModelFileError, match="damaged"):
        ModelArtifact.from_bytes(_pack(members, allow_pickle=True))
    members = _members(artifact)
    members["header"] = np.array([_Exploit()], dtype=object)
    with pytest.raises(ModelFileError):
        ModelArtifact.from_bytes(_pack(members, allow_pickle=True))
    assert not marker.exists()


def test_a_joblib_pickle_of_format_1_is_refused_unread(tmp_path: Path) -> None:
    import joblib  # type: ignore[import-untyped]

    marker = tmp_path / "pwned"
    _Exploit.marker = str(marker)
    old = tmp_path / "model.joblib"
    joblib.dump({"format": "tokenwarden-model", "version": 1, "x": _Exploit()}, old)
    with pytest.raises(ModelFileError, match=r"not a tokenwarden model file.*train it again"):
        ModelArtifact.load(old)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="does not exist"):
        ModelArtifact.load(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "something-else"}, "not a tokenwarden model file"),
        ({"version": 1}, "version 1, this build reads 2; train it again"),
        ({"features": ["rate_1m"]}, "trained on features.*train it again"),
        ({"tenants": [{"name": "acme"}]}, "bad header"),
        ({"created": 5}, "bad header"),
    ],
)
def test_a_header_that_is_not_ours_is_refused(
    artifact: ModelArtifact, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelFileError, match=message):
        ModelArtifact.from_bytes(_with_header(artifact, **changes))


def test_damaged_archives_are_refused_with_what_is_wrong(artifact: ModelArtifact) -> None:
    data = artifact.to_bytes()
    with pytest.raises(ModelFileError, match="not a tokenwarden model file"):
        ModelArtifact.from_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a tokenwarden model file"):
        ModelArtifact.from_bytes(b"")
    members = _members(artifact)
    members["header"] = np.frombuffer(b"{not json", dtype=np.uint8)
    with pytest.raises(ModelFileError, match="not JSON"):
        ModelArtifact.from_bytes(_pack(members))
    members = _members(artifact)
    del members["t1.left"]
    with pytest.raises(ModelFileError, match="damaged"):
        ModelArtifact.from_bytes(_pack(members))
    members = _members(artifact)
    members["t0.left"] = members["t0.left"].copy()
    members["t0.left"][0] = 0  # the root of the first tree is its own child: a cycle
    with pytest.raises(ModelFileError, match="tenant acme: a split's children"):
        ModelArtifact.from_bytes(_pack(members))
    members = _members(artifact)
    members["t0.sample"] = members["t0.sample"][:, :3]
    with pytest.raises(ModelFileError, match="tenant acme: its sample"):
        ModelArtifact.from_bytes(_pack(members))
    header = orjson.loads(_members(artifact)["header"].tobytes())
    header["tenants"][0]["threshold"] = "NaN"
    with pytest.raises(ModelFileError, match="threshold"):
        ModelArtifact.from_bytes(_with_header(artifact, tenants=header["tenants"]))


def test_an_archive_that_unpacks_too_large_is_refused_before_reading(
    artifact: ModelArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_artifact, "MAX_UNPACKED_BYTES", 10_000)
    with pytest.raises(ModelFileError, match=r"unpacks to \d+ bytes, over 10000"):
        ModelArtifact.from_bytes(artifact.to_bytes())
