"""Every detector is registered, buildable and documented (pySigma-style registry test)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import detectors
from detectors import DETECTORS, Detector, UnknownDetector, build_detectors

README = Path(__file__).resolve().parents[2] / "README.md"


def _detector_classes() -> list[type]:
    """Every class in a detectors.* module that implements ``detect``."""
    out = []
    for info in pkgutil.iter_modules(detectors.__path__):
        module = importlib.import_module(f"detectors.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            is_local = obj.__module__ == module.__name__
            if is_local and callable(getattr(obj, "detect", None)) and obj is not Detector:
                out.append(obj)
    assert out, "no detector classes found"
    return out


def test_every_detector_class_is_registered() -> None:
    for cls in _detector_classes():
        assert DETECTORS.get(cls.name) is cls, f"{cls.__name__} is not in DETECTORS"


def _class_docstring(cls: type) -> str | None:
    """The class's docstring in its source (a compiled class keeps none at runtime)."""
    source = Path(detectors.__file__).parent / f"{cls.__module__.rsplit('.', 1)[-1]}.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return ast.get_docstring(node)
    return None


def test_every_registered_detector_builds_and_satisfies_the_protocol() -> None:
    for built in build_detectors():
        assert isinstance(built, Detector)
        assert _class_docstring(type(built)), f"{built.name} has no docstring"


def test_every_registered_detector_is_documented_in_the_readme() -> None:
    text = README.read_text()
    table = text.split("## Detectors", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))
    assert set(DETECTORS) <= documented, f"undocumented: {set(DETECTORS) - documented}"


def test_unknown_detector_is_a_clear_error() -> None:
    with pytest.raises(UnknownDetector, match="registered"):
        build_detectors(["nope"])


def test_bad_parameters_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="refresh_reuse"):
        build_detectors(["refresh_reuse"], {"refresh_reuse": {"grace": 3}})
