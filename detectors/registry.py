"""The detector registry: config name -> detector class.

Every detector is registered here and documented in the README's detector table (a test
checks both). ``build_detectors`` turns the ``[detectors]`` config section into instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from detectors.base import Detector
from detectors.refresh_reuse import RefreshReuseDetector
from detectors.signal import SignalDetector


class DetectorFactory(Protocol):
    name: str

    def from_config(self, params: dict[str, Any]) -> Detector: ...


DETECTORS: dict[str, Any] = {
    RefreshReuseDetector.name: RefreshReuseDetector,
    SignalDetector.name: SignalDetector,
}


class UnknownDetector(ValueError):
    pass


def build_detectors(
    enabled: Sequence[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Detector]:
    """Instances of the enabled detectors (all registered ones by default)."""
    names = list(DETECTORS) if enabled is None else list(enabled)
    out: list[Detector] = []
    for name in names:
        cls = DETECTORS.get(name)
        if cls is None:
            raise UnknownDetector(f"unknown detector {name!r}; registered: {sorted(DETECTORS)}")
        try:
            out.append(cls.from_config(dict((params or {}).get(name, {}))))
        except TypeError as exc:
            raise ValueError(f"bad parameters for detector {name!r}: {exc}") from None
    return out
