"""Monitoring of a served model: drift between logged requests and the training data."""

from sentiment_hf.monitoring.drift import detect_drift
from sentiment_hf.monitoring.report import DriftReport, DriftThresholds

__all__ = ["DriftReport", "DriftThresholds", "detect_drift"]
