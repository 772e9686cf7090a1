"""The compiled detector modules (``detectors._native``): used only when built from the
sources at hand, and used in CI."""

from __future__ import annotations

import gc
import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detectors import _native
from detectors.records import EntityRecord, VolumePart

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _build(here: Path) -> None:
    """A fake build in ``here``: sources, extensions, and the digest it was made from."""
    for name in _native.COMPILED:
        (here / f"{name}.py").write_text(f"# {name}\n")
        (here / f"{name}{SUFFIX}").write_bytes(b"")
    (here / f"_native__mypyc{SUFFIX}").write_bytes(b"")
    (here / _native.BUILT_FROM).write_text(_native.digest(here) + "\n")


def test_a_build_made_from_the_sources_at_hand_is_used(tmp_path: Path) -> None:
    _build(tmp_path)
    assert _native.verdict(tmp_path) is None
    assert _native.verdict(tmp_path, pure=True) == ""  # TOKENWARDEN_PURE_PYTHON=1


def test_a_build_from_other_sources_is_not_used(tmp_path: Path) -> None:
    _build(tmp_path)
    (tmp_path / "volume.py").write_text("# volume, edited since the build\n")
    assert _native.verdict(tmp_path) == "their sources changed since they were built"
    _build(tmp_path)
    (tmp_path / _native.BUILT_FROM).unlink()
    assert _native.verdict(tmp_path) == "their sources changed since they were built"


def test_a_partial_build_is_not_used_and_no_build_is_no_news(tmp_path: Path) -> None:
    _build(tmp_path)
    (tmp_path / f"burst{SUFFIX}").unlink()
    assert _native.verdict(tmp_path) == "some of them are missing"
    for f in tmp_path.iterdir():
        if f.name.endswith(SUFFIX):
            f.unlink()
    assert _native.verdict(tmp_path) == ""


def test_pure_python_is_asked_for_with_an_environment_variable() -> None:
    code = "import detectors.volume as v, detectors._native as n; print(n.ACTIVE, v.__file__)"
    env = {**os.environ, "TOKENWARDEN_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    active, path = out.stdout.split()
    assert active == "False" and path.endswith("volume.py")


@pytest.mark.skipif(
    os.environ.get("CI", "").lower() not in {"1", "true", "yes"},
    reason="CI runs the compiled modules",
)
def test_ci_runs_the_compiled_modules() -> None:
    if os.environ.get("TOKENWARDEN_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("this run asked for the sources")
    import detectors.volume

    assert _native.ACTIVE, "CI did not build the compiled detector modules (make compile)"
    assert not detectors.volume.__file__.endswith(".py")  # type: ignore[union-attr]
    # compiled, the usage records stay out of the cyclic garbage collector's way
    assert not gc.is_tracked(EntityRecord()) and not gc.is_tracked(VolumePart(1.0))
