"""The detector registry: config name -> detector class.

Every detector is registered here and documented in the README's detector table (a test
checks both). ``build_detectors`` turns the ``[detectors]`` config section into instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from detectors.base import Detector
from detectors.burst import BurstDetector
from detectors.destination import DestinationDetector
from detectors.engine import Engine, EngineConfig
from detectors.model import ModelDetector
from detectors.refresh_reuse import RefreshReuseDetector
from detectors.scope_drift import ScopeDriftDetector
from detectors.signal import SignalDetector
from detectors.volume import VolumeDetector


class DetectorFactory(Protocol):
    name: str

    def from_config(self, params: dict[str, Any]) -> Detector: ...


DETECTORS: dict[str, Any] = {
    RefreshReuseDetector.name: RefreshReuseDetector,
    SignalDetector.name: SignalDetector,
    VolumeDetector.name: VolumeDetector,
    ScopeDriftDetector.name: ScopeDriftDetector,
    DestinationDetector.name: DestinationDetector,
    BurstDetector.name: BurstDetector,
    ModelDetector.name: ModelDetector,
}

#: The ``[detectors.engine]`` section configures the Engine, not a detector.
ENGINE_SECTION = "engine"


class UnknownDetector(ValueError):
    pass


def build_detectors(
    enabled: Sequence[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Detector]:
    """Instances of the enabled detectors (all registered ones by default)."""
    names = list(DETECTORS) if enabled is None else [n for n in enabled if n != ENGINE_SECTION]
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


def build_engine(
    enabled: Sequence[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Engine:
    """The Engine over the enabled detectors, configured by ``[detectors.engine]``."""
    engine_params = dict((params or {}).get(ENGINE_SECTION, {}))
    try:
        config = EngineConfig(**engine_params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for the engine: {exc}") from None
    return Engine(build_detectors(enabled, params), config)
