"""Prometheus rules: `promtool check rules`, rule unit tests, and metric names the app exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[1] / "monitoring"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package (apt-get install prometheus)"
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=MONITORING, capture_output=True, text=True, timeout=60)


@pytest.mark.linux_only  # promtool from Debian's prometheus package
def test_rules_are_valid(promtool: str) -> None:
    done = _run(promtool, "check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.linux_only  # promtool from Debian's prometheus package
def test_rule_unit_tests_pass(promtool: str) -> None:
    done = _run(promtool, "test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.linux_only  # promtool from Debian's prometheus package
def test_example_prometheus_config_is_valid(promtool: str) -> None:
    done = _run(promtool, "check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_required_alerts_exist_and_use_exported_metrics(tiny_run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from sentiment_hf.serve import create_app

    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    records = {r["record"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    assert {"SentimentHighErrorRate", "SentimentHighLatencyP95", "SentimentDriftDetected"} <= set(
        alerts
    )

    report = tmp_path / "drift.json"
    report.write_text('{"drift_detected": false}')
    app = create_app(tiny_run, request_log=None, drift_report=report)
    with TestClient(app) as client:
        client.post("/predict", json={"text": "fine"})
        exported = client.get("/metrics").text
    names = set(re.findall(r"^([a-z_:]+)(?:\{| )", exported, flags=re.M))
    used = set()
    for expr in [*alerts.values(), *records.values()]:
        used |= {n for n in re.findall(r"\b(sentiment_[a-z_]+)\b", expr)}
    missing = used - names
    assert not missing, f"rules use metrics the app does not export: {missing}"
