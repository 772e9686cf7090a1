"""AuditEvent -> Detection: the detectors, their registry and the Engine."""

# first: whether the compiled modules or their sources are imported (``detectors._native``)
from detectors import _native  # noqa: F401  # isort: skip
from detectors.base import Detector, State, UsageDetector
from detectors.burst import BurstConfig, BurstDetector
from detectors.destination import DestinationConfig, DestinationDetector
from detectors.detection import Detection, Severity
from detectors.engine import Engine, EngineConfig
from detectors.features import FEATURES, Finding, Observation, upgrade_state
from detectors.model import ModelConfig, ModelDetector
from detectors.model_artifact import ModelArtifact, ModelFileError
from detectors.network import network_of
from detectors.refresh_reuse import RefreshReuseConfig, RefreshReuseDetector
from detectors.registry import DETECTORS, UnknownDetector, build_detectors, build_engine
from detectors.risk import raise_risk, risk_of
from detectors.scope_drift import ScopeDriftConfig, ScopeDriftDetector
from detectors.signal import SignalConfig, SignalDetector
from detectors.volume import VolumeConfig, VolumeDetector

__all__ = [
    "DETECTORS",
    "FEATURES",
    "BurstConfig",
    "BurstDetector",
    "DestinationConfig",
    "DestinationDetector",
    "Detection",
    "Detector",
    "Engine",
    "EngineConfig",
    "Finding",
    "ModelArtifact",
    "ModelConfig",
    "ModelDetector",
    "ModelFileError",
    "Observation",
    "RefreshReuseConfig",
    "RefreshReuseDetector",
    "ScopeDriftConfig",
    "ScopeDriftDetector",
    "Severity",
    "SignalConfig",
    "SignalDetector",
    "State",
    "UnknownDetector",
    "UsageDetector",
    "VolumeConfig",
    "VolumeDetector",
    "build_detectors",
    "build_engine",
    "network_of",
    "raise_risk",
    "risk_of",
    "upgrade_state",
]
