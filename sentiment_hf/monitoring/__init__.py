"""Monitoring of a served model: drift between logged requests and the training data.

``detect_drift`` is imported on first use, so the settings (``DriftConfig``, whose defaults the
``sentiment`` CLI shows) load without numpy and scipy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sentiment_hf.monitoring.config import DriftConfig
from sentiment_hf.monitoring.report import DriftCheck, DriftReport, DriftThresholds

if TYPE_CHECKING:
    from sentiment_hf.monitoring.drift import detect_drift

__all__ = ["DriftCheck", "DriftConfig", "DriftReport", "DriftThresholds", "detect_drift"]


def __getattr__(name: str) -> Any:
    if name == "detect_drift":
        from sentiment_hf.monitoring.drift import detect_drift

        return detect_drift
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
