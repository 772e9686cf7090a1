"""AuditEvent -> Detection: the detectors, their registry and the Engine."""

from detectors.base import Detector, State
from detectors.detection import Detection, Severity
from detectors.engine import Engine
from detectors.network import network_of
from detectors.refresh_reuse import RefreshReuseConfig, RefreshReuseDetector
from detectors.registry import DETECTORS, UnknownDetector, build_detectors

__all__ = [
    "DETECTORS",
    "Detection",
    "Detector",
    "Engine",
    "RefreshReuseConfig",
    "RefreshReuseDetector",
    "Severity",
    "State",
    "UnknownDetector",
    "build_detectors",
    "network_of",
]
