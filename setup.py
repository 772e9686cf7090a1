"""Builds tokenwarden; with ``TOKENWARDEN_COMPILE=1``, compiles the detectors' hot modules
with mypyc (``detectors._native`` says which, and how a stale build is noticed).

The metadata is in ``pyproject.toml``. Compiling needs mypy and everything the compiled
modules import installed already (mypyc type-checks them with the project's mypy settings),
so it runs without build isolation, after a plain install::

    pip install -e '.[dev]'
    TOKENWARDEN_COMPILE=1 python setup.py build_ext --inplace     # what `make` runs

Without the variable nothing is compiled and the same code runs as Python.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def _native() -> ModuleType:
    """``detectors/_native.py`` on its own (importing the package needs its dependencies)."""
    spec = importlib.util.spec_from_file_location("_native", HERE / "detectors" / "_native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildExt(build_ext):
    """``build_ext`` that records what the detectors were compiled from
    (``detectors._native.BUILT_FROM``), so a stale build is noticed and not used."""

    def run(self) -> None:
        super().run()
        if self.extensions:
            native = _native()
            package = HERE / "detectors" if self.inplace else Path(self.build_lib) / "detectors"
            (package / native.BUILT_FROM).write_text(native.digest(HERE / "detectors") + "\n")


def _extensions() -> list[object]:
    if os.environ.get("TOKENWARDEN_COMPILE", "") in ("", "0"):
        return []
    from mypyc.build import mypycify

    modules = [f"detectors/{name}.py" for name in _native().COMPILED]
    # one shared library inside the package (``detectors/_native__mypyc...so``, the
    # ``group_name``), so the compiled modules import from wherever the package is installed
    return list(mypycify(modules, opt_level="3", group_name="detectors._native"))


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
