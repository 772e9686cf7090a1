"""Which detector modules run compiled, and running their sources when the build is stale.

``make`` compiles the detectors' hot modules (:data:`COMPILED`) with mypyc
(``TOKENWARDEN_COMPILE=1 python setup.py build_ext --inplace``): each becomes an extension
module next to its source, and Python imports the extension before the ``.py``. The
compiled code is the same code — the same detections and state, ``tests/detectors`` runs
against both — and the engine runs faster: its records keep their numbers unboxed and its
attribute reads are C (README, "Speed"; the Kafka workers measured slower compiled, not
explained yet: docs/speed-log.md, session 16).

An extension built from other sources would run the old code silently, so before the
package imports them :func:`choose` looks: if the sources differ from those the build was
made from (an edit, a ``git pull`` without ``make``: the build writes the :func:`digest` of
its sources next to itself, :data:`BUILT_FROM`), or an extension is missing, or
``TOKENWARDEN_PURE_PYTHON=1`` asks for it, every compiled module is imported from its
source instead (all or none: compiled modules call each other natively), with a warning
when the build is stale. :data:`ACTIVE` says which it is.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

#: the modules ``setup.py`` compiles
COMPILED = ("records", "features", "volume", "scope_drift", "destination", "burst", "engine")
#: the shared library that holds their compiled code (``setup.py``'s ``group_name``)
_LIBRARY = "_native__mypyc"
#: written by a build next to it: the :func:`digest` of the sources it was built from
BUILT_FROM = "_native.sources"
_PACKAGE = __name__.rpartition(".")[0]
_HERE = Path(__file__).resolve().parent


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources ahead of their extensions."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != _PACKAGE or name not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, _HERE / f"{name}.py")


def _extension(name: str, here: Path) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def digest(here: Path = _HERE) -> str:
    """A hash of the compiled modules' sources: what a build was made from."""
    h = hashlib.sha256()
    for name in COMPILED:
        h.update((here / f"{name}.py").read_bytes())
    return h.hexdigest()


def verdict(here: Path = _HERE, *, pure: bool = False) -> str | None:
    """``None`` if the build in ``here`` is complete and made from the sources there; else
    why not (``""``: nothing to say — no build at all, or ``pure`` asks for the sources)."""
    shims = [_extension(name, here) for name in COMPILED]
    code = _extension(_LIBRARY, here)
    if pure or (code is None and not any(shims)):
        return ""
    if code is None or not all(shims):
        return "some of them are missing"
    built_from = here / BUILT_FROM
    if not built_from.exists() or built_from.read_text().strip() != digest(here):
        return "their sources changed since they were built"
    return None


def choose() -> bool:
    """Whether the compiled modules are imported (else their sources: module docstring),
    kept in :data:`ACTIVE`. Called once, when the package imports this module before any
    of them."""
    global ACTIVE
    why = verdict(pure=os.environ.get("TOKENWARDEN_PURE_PYTHON", "") not in ("", "0"))
    ACTIVE = why is None
    if why is None:
        return True
    if why:
        warnings.warn(
            f"the compiled detector modules are not used: {why}; running their sources "
            f"(`make compile` builds them again)",
            RuntimeWarning,
            stacklevel=3,
        )
    if not any(isinstance(f, _Sources) for f in sys.meta_path):
        sys.meta_path.insert(0, _Sources())
    return False


#: whether the compiled modules are in use (``choose``)
ACTIVE = False

if _PACKAGE:  # imported by the package (``setup.py`` loads this file on its own)
    choose()
