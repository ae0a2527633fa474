"""The decision policy on a real (tiny) run: fitted, stored, and applied the same everywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_inprocess import run_main
from conftest import SPREAD_TEXTS

from sentiment_hf.calibration import softmax
from sentiment_hf.policy import ABSTAIN_LABEL, DecisionPolicy, fit_policy
from sentiment_hf.predict import Predictor
from sentiment_hf.rundir import POLICY_FILE, RunDir


@pytest.fixture
def run(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny run (the policy is written into it)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def _write_policy(run: Path, policy: DecisionPolicy) -> None:
    (run / POLICY_FILE).write_text(json.dumps(policy.to_dict()))


def test_fitted_policy_is_stored_and_lowers_validation_nll(run: Path) -> None:
    report = fit_policy(run, objective="nll")  # the recipe says ece (recipes/base.yaml)
    stored = json.loads((run / POLICY_FILE).read_text())
    assert stored["temperature"] == pytest.approx(report.policy.temperature)
    # the run's whole validation split (eval's view of the data: no sample limits)
    assert stored["fitted_on"] == {"split": "validation", "samples": 1066, "objective": "nll"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["calibration_temperature"] == pytest.approx(report.policy.temperature)
    assert metrics["eval_nll"] <= metrics["eval_nll_uncalibrated"] + 1e-9
    for prefix in ("eval", "test"):
        for key in ("nll", "brier", "ece", "mean_confidence"):
            assert f"{prefix}_{key}" in metrics and f"{prefix}_{key}_uncalibrated" in metrics
    assert "test_accuracy" in metrics  # the training metrics are kept beside the new ones
    assert report.reliability_path.stat().st_size > 1000
    from sentiment_hf.card import build_model_card

    card = build_model_card(run, "me/tiny")
    assert f"T = {report.policy.temperature:.2f}" in card
    assert f"test ECE {metrics['test_ece_uncalibrated']:.3f} → {metrics['test_ece']:.3f}" in card
    assert "not calibrated" not in card


def test_predictor_returns_probabilities_at_the_stored_temperature(run: Path) -> None:
    texts = ["a gorgeous, witty, seductive movie.", "dull and overlong", "it is a film"]
    raw = Predictor(run).predict_logits(texts)
    _write_policy(run, DecisionPolicy(temperature=3.0))
    predictor = Predictor(run)
    np.testing.assert_allclose(predictor.predict_proba(texts), softmax(raw / 3.0), atol=1e-6)
    assert [p.score for p in predictor.predict(texts)] == pytest.approx(
        softmax(raw / 3.0).max(axis=1)
    )


def test_abstain_band_answers_uncertain_and_threshold_moves_the_label(run: Path) -> None:
    texts = ["a gorgeous, witty, seductive movie.", "dull and overlong"]
    _write_policy(run, DecisionPolicy(min_confidence=1.0))  # nothing is that sure
    preds = Predictor(run).predict(texts)
    assert [p.label for p in preds] == [ABSTAIN_LABEL] * 2 and all(p.abstained for p in preds)
    _write_policy(run, DecisionPolicy(threshold=0.0))  # every text is label 1
    assert [p.label for p in Predictor(run).predict(texts)] == [RunDir.open(run).labels[1]] * 2


def test_onnx_backends_give_the_same_calibrated_probabilities(run: Path) -> None:
    from sentiment_hf.export import export_onnx

    # a set temperature (sharper than none), not a fitted one: the near-chance tiny run would be
    # fitted flat (T=20), and every backend would agree on ~0.5 whatever it computed
    _write_policy(run, DecisionPolicy(temperature=0.5))
    export_onnx(run, quantize="int8", parity=False)
    texts = SPREAD_TEXTS[:15]
    torch_probs = Predictor(run).predict_proba(texts)
    assert np.ptp(torch_probs[:, 1]) > 4 * 0.05  # the answers differ far more than int8's slack
    onnx_probs = Predictor(run, backend="onnx").predict_proba(texts)
    int8_probs = Predictor(run, backend="onnx-int8").predict_proba(texts)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)
    np.testing.assert_allclose(int8_probs, torch_probs, atol=0.05)  # int8 rounds the weights


def test_eval_reports_calibration_coverage_and_intervals(run: Path) -> None:
    from sentiment_hf.evaluation import evaluate_model

    fit_policy(run)
    report = evaluate_model(run, split="test")
    m = report.metrics
    lo, hi = m["test_accuracy_ci95"]
    assert lo <= m["test_accuracy"] <= hi and hi - lo > 0
    from sentiment_hf.calibration import accuracy_at_coverage
    from sentiment_hf.data import load_splits

    cfg = RunDir.open(run).data_config()
    test = load_splits(cfg, splits=("test",)).splits["test"]
    probs = Predictor(run).predict_proba(test["text"])
    expected = accuracy_at_coverage(probs, np.asarray(test["label"]), 0.8)
    assert m["test_accuracy_at_80pct_coverage"] == pytest.approx(expected)
    assert m["test_ece"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["test_ece"]
    )
    assert report.reliability_path.is_file() and report.risk_coverage_path.is_file()


def test_calibrate_takes_the_recipes_policy_unless_told(
    run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's line refits as training would (recipes/base.yaml: objective ece), keeping
    the floor it is given; an option given on the command line wins over the recipe."""
    assert RunDir.open(run).policy_config.objective == "ece"
    done = run_main(["calibrate", str(run), "--min-confidence", "0.6"], capsys, monkeypatch)
    assert done.code == 0, done.stderr
    stored = json.loads((run / POLICY_FILE).read_text())
    assert (stored["fitted_on"]["objective"], stored["min_confidence"]) == ("ece", 0.6)
    done = run_main(["calibrate", str(run), "--objective", "nll"], capsys, monkeypatch)
    assert done.code == 0, done.stderr
    stored = json.loads((run / POLICY_FILE).read_text())
    assert (stored["fitted_on"]["objective"], stored["min_confidence"]) == ("nll", None)


def test_cli_calibrate_and_its_bad_input(
    run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process through the console entry point (tests/cli_inprocess.py)."""
    done = run_main(
        ["calibrate", str(run), "--threshold-metric", "balanced_accuracy"], capsys, monkeypatch
    )
    assert done.code == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["policy"]["threshold_metric"] == "balanced_accuracy"
    assert 0.05 <= printed["policy"]["threshold"] <= 0.95
    assert json.loads((run / POLICY_FILE).read_text()) == printed["policy"]  # what it printed
    before = (run / POLICY_FILE).read_bytes()
    bad = run_main(["calibrate", str(run), "--threshold-metric", "auc"], capsys, monkeypatch)
    assert bad.code == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown threshold metric 'auc'")
    assert len(bad.error_lines) == 1 and "Traceback" not in bad.stderr
    assert (run / POLICY_FILE).read_bytes() == before  # nothing already written is touched
    (run / POLICY_FILE).write_text('{"temperature": 1.0, "temprature": 2}')
    damaged = run_main(["predict", str(run), "fine"], capsys, monkeypatch)
    assert damaged.code == 2 and "unknown key(s) temprature" in damaged.stderr
