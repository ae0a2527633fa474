"""Monitoring of a served model: drift between logged requests and the training data."""

from sentiment_hf.monitoring.drift import DriftReport, DriftThresholds, detect_drift

__all__ = ["DriftReport", "DriftThresholds", "detect_drift"]
