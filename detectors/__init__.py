"""AuditEvent -> Detection: the detectors, their registry and the Engine."""

from detectors.base import Detector, State
from detectors.detection import Detection, Severity
from detectors.engine import Engine
from detectors.network import network_of
from detectors.refresh_reuse import RefreshReuseConfig, RefreshReuseDetector
from detectors.registry import DETECTORS, UnknownDetector, build_detectors
from detectors.risk import raise_risk, risk_of
from detectors.signal import SignalConfig, SignalDetector

__all__ = [
    "DETECTORS",
    "Detection",
    "Detector",
    "Engine",
    "RefreshReuseConfig",
    "RefreshReuseDetector",
    "Severity",
    "SignalConfig",
    "SignalDetector",
    "State",
    "UnknownDetector",
    "build_detectors",
    "network_of",
    "raise_risk",
    "risk_of",
]
