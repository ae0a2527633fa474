"""Monitoring of a served model: drift between logged requests and the training data.

``detect_drift`` is imported on first use, so the settings (``DriftConfig``, whose defaults the
``sentiment`` CLI shows) load without numpy and scipy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiment_hf.lazy import lazy_getattr
from sentiment_hf.monitoring.config import DriftConfig
from sentiment_hf.monitoring.report import DriftCheck, DriftReport, DriftThresholds

if TYPE_CHECKING:
    from sentiment_hf.monitoring.drift import detect_drift

__all__ = ["DriftCheck", "DriftConfig", "DriftReport", "DriftThresholds", "detect_drift"]

__getattr__ = lazy_getattr(__name__, {"detect_drift": "drift"})
