"""Prometheus metrics of the inference API, one registry per app.

Under ``--workers N`` uvicorn forks several processes; when ``PROMETHEUS_MULTIPROC_DIR`` is set
(``sentiment serve`` sets it), ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class DriftReportCollector(Collector):
    """Expose the flag of the latest ``sentiment drift`` JSON report at scrape time."""

    def __init__(self, report: Path) -> None:
        self.report = report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        detected = GaugeMetricFamily(
            "sentiment_drift_detected", "1 when the latest drift report flagged drift, else 0"
        )
        stamp = GaugeMetricFamily(
            "sentiment_drift_report_timestamp_seconds", "When the latest drift report was written"
        )
        try:
            payload = json.loads(self.report.read_text())
            detected.add_metric([], 1.0 if payload.get("drift_detected") else 0.0)
            stamp.add_metric([], float(self.report.stat().st_mtime))
        except (OSError, ValueError):
            return  # no report yet: expose nothing rather than a misleading 0
        yield detected
        yield stamp


class ServeMetrics:
    """Counters, histograms and gauges of one app."""

    def __init__(self, drift_report: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "sentiment_requests",
            "HTTP requests by endpoint, method and status code",
            ["endpoint", "method", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "sentiment_request_latency_seconds",
            "Request latency by endpoint (seconds)",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.inference_latency = Histogram(
            "sentiment_inference_latency_seconds",
            "Model time per inference call (seconds)",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.request_batch = Histogram(
            "sentiment_request_batch_size",
            "Texts per /predict request",
            buckets=SIZE_BUCKETS,
            registry=reg,
        )
        self.inference_batch = Histogram(
            "sentiment_inference_batch_size",
            "Texts per model call (micro-batching joins concurrent requests)",
            buckets=SIZE_BUCKETS,
            registry=reg,
        )
        self.predictions = Counter(
            "sentiment_predictions", "Predicted labels", ["label"], registry=reg
        )
        self.model_info = Gauge(
            "sentiment_model_info",
            "The served model (value is always 1)",
            ["model_version", "backend", "model_dir"],
            registry=reg,
            multiprocess_mode="max",
        )
        self.ready = Gauge(
            "sentiment_model_ready",
            "1 once the model is loaded",
            registry=reg,
            multiprocess_mode="min",
        )
        self.log_dropped = Counter(
            "sentiment_request_log_dropped",
            "Request-log rows dropped because the write queue was full",
            registry=reg,
        )
        if drift_report is not None:
            reg.register(DriftReportCollector(drift_report))
        self._drift_report = drift_report

    def observe_inference(self, n: int, seconds: float) -> None:
        """One model call of the runner: ``n`` texts in ``seconds``."""
        self.inference_batch.observe(n)
        self.inference_latency.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers under multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            if self._drift_report is not None:
                registry.register(DriftReportCollector(self._drift_report))
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
