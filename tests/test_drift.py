"""Drift report: the statistics, and `sentiment drift` on shifted vs unshifted request logs."""

from __future__ import annotations

import inspect
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sentiment_hf.errors import SentimentError
from sentiment_hf.monitoring import DriftConfig, DriftThresholds, detect_drift
from sentiment_hf.monitoring.drift import oov_counts, parse_since, run_checks, words
from sentiment_hf.monitoring.stats import chi2_test, ks_test, mmd_permutation_test
from sentiment_hf.serve.requestlog import (
    LoggedPrediction,
    RequestLog,
    RequestLogConfig,
    read_requests,
)

FAST = {"reference_size": 300, "embedding_sample": 150, "permutations": 200}


def test_ks_and_chi2_separate_same_from_shifted() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 400), rng.normal(0, 1, 400)
    assert ks_test(a, b).p_value > 0.05
    assert ks_test(a, b + 1.0).p_value < 1e-6
    assert chi2_test(np.array([50, 50]), np.array([48, 52])).p_value > 0.5
    assert chi2_test(np.array([50, 50]), np.array([90, 10])).p_value < 1e-6
    assert chi2_test(np.array([10, 0]), np.array([5, 0])).p_value == 1.0  # one category only


def test_mmd_permutation_test() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (80, 8))
    same = mmd_permutation_test(x, rng.normal(0, 1, (80, 8)), permutations=200)
    shifted = mmd_permutation_test(x, rng.normal(0.6, 1, (80, 8)), permutations=200)
    assert same.p_value > 0.05
    assert shifted.p_value < 0.01 and shifted.statistic > same.statistic
    with pytest.raises(ValueError):
        mmd_permutation_test(x[:1], x, permutations=10)


def test_parse_since_and_vocabulary_helpers() -> None:
    now = 1_700_000_000.0
    assert parse_since("24h", now=now) == now - 86400
    assert parse_since("30m", now=now) == now - 1800
    assert parse_since("2025-01-31") == 1738281600.0
    assert parse_since(None) is None
    with pytest.raises(SentimentError, match="neither a duration"):
        parse_since("yesterday")
    assert words("It's a GREAT film, 10/10!") == ["it's", "a", "great", "film", "10", "10"]
    assert oov_counts(["great film", "zyzzyva film"], {"great", "film"}) == (1, 4)


def _stdlib_docstrings() -> list[str]:
    """Real English text from another domain: first paragraphs of stdlib docstrings."""
    import argparse
    import asyncio
    import collections
    import csv
    import json as json_mod
    import logging
    import os
    import pathlib
    import sqlite3
    import subprocess

    out = []
    for mod in (
        json_mod,
        os,
        csv,
        argparse,
        logging,
        pathlib,
        subprocess,
        sqlite3,
        asyncio,
        collections,
    ):
        for _, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                line = doc.strip().split("\n\n")[0].replace("\n", " ")
                if 20 < len(line) < 400:
                    out.append(line)
    return out


def _log(db: Path, texts: list[str], ts: float | None = None) -> Path:
    log = RequestLog(RequestLogConfig(path=db, retention_days=None))
    now = time.time() if ts is None else ts
    rows = [
        LoggedPrediction(now, t, "pos", 0.9, {"neg": 0.1, "pos": 0.9}, 2.0, "v1", "onnx-int8")
        for t in texts
    ]
    log.append(rows)
    log.close()
    return db


@pytest.fixture(scope="module")
def request_logs(rt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from sentiment_hf.data.load import read_rt_polarity

    base = tmp_path_factory.mktemp("drift")
    test_texts = list(read_rt_polarity(rt_dir)["test"]["text"])
    rng = np.random.default_rng(0)
    same = [test_texts[i] for i in rng.choice(len(test_texts), 200, replace=False)]
    shifted = _stdlib_docstrings()[:200]
    assert len(shifted) == 200
    return {"same": _log(base / "same.db", same), "shifted": _log(base / "shifted.db", shifted)}


def test_unshifted_requests_are_not_flagged(tiny_run: Path, request_logs, tmp_path: Path) -> None:
    report = detect_drift(DriftConfig(tiny_run, request_logs["same"], output_dir=tmp_path, **FAST))
    assert not report.drift_detected, [(c.name, c.p_value) for c in report.checks]
    assert [c.name for c in report.checks] == [
        "text_length",
        "oov_rate",
        "label_mix",
        "confidence",
        "embedding_mmd",
    ]
    assert report.n_requests == 200 and report.n_reference == 300
    payload = json.loads((tmp_path / "drift.json").read_text())
    assert payload["drift_detected"] is False and payload["served"]["backends"] == ["onnx-int8"]
    assert "sentiment_drift_detected 0.0" in (tmp_path / "drift.prom").read_text()


def test_shifted_requests_are_flagged_and_cli_exits_1(
    tiny_run: Path, request_logs, tmp_path: Path, monkeypatch, capsys
) -> None:
    from sentiment_hf.cli import main

    out = tmp_path / "report"
    argv = ["sentiment", "drift", str(tiny_run), "--requests", str(request_logs["shifted"])]
    argv += ["--output", str(out), "--reference-size", "300", "--permutations", "200"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    printed = capsys.readouterr().out
    assert "drift detected (200 requests vs 300 training texts)" in printed
    payload = json.loads((out / "drift.json").read_text())
    flagged = {c["name"] for c in payload["checks"] if c["drifted"]}
    assert {"text_length", "oov_rate", "embedding_mmd"} <= flagged
    oov = next(c for c in payload["checks"] if c["name"] == "oov_rate")
    assert oov["current"] > oov["reference"] + 0.05
    html = (out / "drift.html").read_text()
    assert "DRIFT DETECTED" in html and "embedding_mmd" in html
    assert not re.search(r"(src|href)=\"https?://", html)  # self-contained
    assert "sentiment_drift_detected 1.0" in (out / "drift.prom").read_text()


def test_drift_reads_a_mirror_folder(tiny_run: Path, request_logs, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    log = RequestLog(RequestLogConfig(path=tmp_path / "copy.db", mirror=str(mirror)))
    log.append(read_requests(request_logs["shifted"]))
    log.close()  # writes, then mirrors everything as one JSON-lines part
    assert len(list(mirror.glob("requests-*.jsonl"))) == 1
    report = detect_drift(DriftConfig(tiny_run, mirror, output_dir=tmp_path / "report", **FAST))
    assert report.drift_detected and report.n_requests == 200
    with pytest.raises(SentimentError, match="no requests-"):
        detect_drift(DriftConfig(tiny_run, tmp_path / "report", **FAST))


def test_cli_exits_0_without_drift(
    tiny_run: Path, request_logs, tmp_path: Path, monkeypatch
) -> None:
    from sentiment_hf.cli import main

    argv = ["sentiment", "drift", str(tiny_run), "--requests", str(request_logs["same"])]
    argv += ["--output", str(tmp_path), "--reference-size", "300", "--permutations", "200"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0


def test_since_and_too_few_requests(tiny_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from sentiment_hf.cli import main

    db = _log(tmp_path / "old.db", ["an old review"] * 40, ts=time.time() - 10 * 86400)
    with pytest.raises(SentimentError, match=r"only 0 logged request\(s\) since 1d"):
        detect_drift(DriftConfig(tiny_run, db, since="1d", **FAST))
    monkeypatch.setattr(sys, "argv", ["sentiment", "drift", str(tiny_run), "--requests", "nope.db"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "not found" in capsys.readouterr().err


def test_bad_thresholds() -> None:
    with pytest.raises(SentimentError, match="alpha"):
        DriftThresholds(alpha=0)
    with pytest.raises(SentimentError, match="min_ks"):
        DriftThresholds(min_ks=2)


class _StubScorer:
    """Probabilities and embeddings without a model: texts starting with "x" lean to label 1."""

    def __call__(self, texts: list[str], desc: str = "") -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(len(texts))
        p1 = np.array([0.9 if t.startswith("x") else 0.2 for t in texts])
        emb = rng.normal(0, 1, (len(texts), 4)) + p1[:, None]
        return np.stack([1 - p1, p1], axis=1), emb


def test_summary_says_what_each_number_is_and_its_unit() -> None:
    """`sentiment drift` prints, per check, what reference and requests mean and in which unit
    (not `label_mix reference=1 current=1`), the statistic's name and the rule with its unit."""
    from sentiment_hf.monitoring.report import DriftReport

    ref = [f"a fine film number {i} with a plot" for i in range(60)]
    cur = [f"xq zzv {i} qqq" for i in range(60)]
    checks, _ = run_checks(
        ref, cur, {"a", "fine", "film", "number", "with", "plot"}, ref[:30], _StubScorer(),
        ["neg", "pos"], DriftThresholds(), embedding_sample=40, permutations=20,
    )  # fmt: skip
    report = DriftReport(
        drift_detected=any(c.drifted for c in checks), checks=checks, n_reference=60,
        n_requests=60, model_dir="run", requests="requests.db", since=None, created_at="now",
        thresholds=DriftThresholds(), served={},
    )  # fmt: skip
    text = report.summary()
    assert not re.search(r"reference=\S+ current=", text), text
    lines = text.splitlines()
    by_name = {c.name: "\n".join(lines[1 + 2 * i : 3 + 2 * i]) for i, c in enumerate(checks)}
    length = by_name["text_length"]
    assert "mean characters per text" in length and " characters, requests " in length
    assert "KS statistic" in length and "drift when KS p < 0.01 and KS statistic >= 0.1" in length
    oov = by_name["oov_rate"]
    assert "share of words never seen in the training split: validation split 12.5 %" in oov
    assert "requests 100.0 %" in oov and "rises by >= 5 percentage points" in oov
    mix = by_name["label_mix"]
    assert "share of texts predicted 'neg'" in mix  # both moved by 100 points: the first
    assert "training sample 100.0 %, requests 0.0 %" in mix
    assert "chi-square statistic" in mix and ">= 10 percentage points" in mix
    conf = by_name["confidence"]
    assert "mean probability of the predicted label" in conf
    assert re.search(r"training sample 0\.800, requests 0\.900", conf), conf
    mmd = by_name["embedding_mmd"]
    assert "MMD² between the mean-pooled backbone embeddings of 40 training texts" in mmd
    assert "requests 0." not in mmd and "(20 permutations)" in mmd
    assert lines[-1] == "drift detected (60 requests vs 60 training texts); exit code 1"
    assert all(c.drifted for c in checks if c.name in {"text_length", "oov_rate", "label_mix"})
    payload = report.to_dict()["checks"]  # drift.json carries the same meanings
    assert {c["name"]: c["unit"] for c in payload} == {
        "text_length": "characters", "oov_rate": "share", "label_mix": "share",
        "confidence": "probability", "embedding_mmd": "",
    }  # fmt: skip
