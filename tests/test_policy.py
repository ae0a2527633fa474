"""The decision policy on a real (tiny) run: fitted, stored, and applied the same everywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_inprocess import run_main
from conftest import SPREAD_TEXTS

from sentiment_hf.evaluation.calibrate import fit_policy
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.rundir import POLICY_FILE, RunDir
from sentiment_hf.tasks.calibration import softmax
from sentiment_hf.tasks.policy import ABSTAIN_LABEL, SingleLabelPolicy


@pytest.fixture
def run(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny run (the policy is written into it)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def _write_policy(run: Path, policy: SingleLabelPolicy) -> None:
    (run / POLICY_FILE).write_text(json.dumps(policy.to_dict()))


def test_fitted_policy_is_stored_and_lowers_validation_nll(run: Path) -> None:
    report = fit_policy(run, objective="nll")  # the recipe says ece (recipes/base.yaml)
    stored = json.loads((run / POLICY_FILE).read_text())
    assert stored["temperature"] == pytest.approx(report.policy.temperature)
    # the rows training scored (the recipe's data.max_eval_samples), as metrics.json says
    assert stored["fitted_on"] == {
        "split": "validation",
        "samples": 64,
        "source": RunDir.open(run).recipe.data.source,
        "objective": "nll",
    }
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["calibration_temperature"] == pytest.approx(report.policy.temperature)
    assert metrics["eval_nll"] <= metrics["eval_nll_uncalibrated"] + 1e-9
    for prefix in ("eval", "test"):
        for key in ("nll", "brier", "ece", "mean_confidence"):
            assert f"{prefix}_{key}" in metrics and f"{prefix}_{key}_uncalibrated" in metrics
    assert "test_accuracy" in metrics  # the training metrics are kept beside the new ones
    assert report.reliability_path.stat().st_size > 1000
    from sentiment_hf.hub.card import build_model_card

    card = build_model_card(run, "me/tiny")
    assert f"T = {report.policy.temperature:.2f}" in card
    assert f"test ECE {metrics['test_ece_uncalibrated']:.3f} → {metrics['test_ece']:.3f}" in card
    assert "not calibrated" not in card


def test_the_policy_is_measured_on_the_rows_metrics_json_describes(run: Path) -> None:
    """With data.max_test_samples=64, test_ece covers the 64 rows test_accuracy covers."""
    import dataclasses

    from sentiment_hf.data.load import load_splits
    from sentiment_hf.tasks.policy import policy_metrics

    fit_policy(run)
    opened = RunDir.open(run)
    sizes = opened.manifest["split_sizes"]
    assert (sizes["validation"], sizes["test"]) == (64, 64)  # tiny_recipe_overrides' limits
    assert json.loads((run / POLICY_FILE).read_text())["fitted_on"]["samples"] == 64
    cfg = dataclasses.replace(opened.recipe.data, label_names=opened.labels)
    test = load_splits(cfg, seed=opened.training_seed, splits=("test",)).splits["test"]
    assert len(test) == 64
    predictor = Predictor(run)
    expected = policy_metrics(
        predictor.predict_logits(test["text"]), np.asarray(test["label"]), predictor.policy, "test"
    )
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test_ece", "test_nll", "test_ece_uncalibrated", "test_brier"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-6), key


def _folder(root: Path, run: Path, splits: tuple[str, ...]) -> Path:
    """A data folder holding the run's own rows as ``{split}.csv`` for ``splits`` only."""
    import csv

    from sentiment_hf.data.load import load_splits

    opened = RunDir.open(run)
    cfg = opened.data_config()
    cfg.label_names = opened.labels
    data = load_splits(cfg, seed=opened.training_seed, splits=splits).splits
    root.mkdir()
    for split in splits:
        with open(root / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for text, label in zip(data[split]["text"][:40], data[split]["label"], strict=False):
                writer.writerow([text, opened.labels[label]])
    return root


def test_calibrate_and_eval_never_cut_a_validation_split_out_of_other_data(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--data without a validation file is refused (exit 2, nothing rewritten); with one, the
    policy is fitted on it and the command says on what."""
    fit_policy(run)
    kept = {name: (run / name).read_bytes() for name in (POLICY_FILE, "metrics.json")}
    no_val = _folder(tmp_path / "no-val", run, ("train", "test"))
    for data in (no_val, no_val / "train.csv"):
        refused = run_main(["calibrate", str(run), "--data", str(data)], capsys, monkeypatch)
        assert refused.code == 2, refused.stderr
        assert len(refused.error_lines) == 1 and "validation" in refused.error_lines[0]
        assert "Traceback" not in refused.stderr
        assert {name: (run / name).read_bytes() for name in kept} == kept
    out = tmp_path / "eval"
    args = ["eval", str(run), "--data", str(no_val), "--split", "validation", "--output"]
    refused = run_main([*args, str(out)], capsys, monkeypatch)
    assert refused.code == 2 and "validation" in refused.error_lines[0], refused.stderr
    assert not out.exists()
    both = _folder(tmp_path / "both", run, ("validation", "test"))
    done = run_main(["calibrate", str(run), "--data", str(both)], capsys, monkeypatch)
    assert done.code == 0, done.stderr
    fitted = json.loads((run / POLICY_FILE).read_text())["fitted_on"]
    assert (fitted["samples"], fitted["source"]) == (40, str(both))
    assert f"40 validation rows of {both}" in done.stdout + done.stderr


def test_predictor_returns_probabilities_at_the_stored_temperature(run: Path) -> None:
    texts = ["a gorgeous, witty, seductive movie.", "dull and overlong", "it is a film"]
    raw = Predictor(run).predict_logits(texts)
    _write_policy(run, SingleLabelPolicy(temperature=3.0))
    predictor = Predictor(run)
    np.testing.assert_allclose(predictor.predict_proba(texts), softmax(raw / 3.0), atol=1e-6)
    assert [p.score for p in predictor.predict(texts)] == pytest.approx(
        softmax(raw / 3.0).max(axis=1)
    )


def test_abstain_band_answers_uncertain_and_threshold_moves_the_label(run: Path) -> None:
    texts = ["a gorgeous, witty, seductive movie.", "dull and overlong"]
    _write_policy(run, SingleLabelPolicy(min_confidence=1.0))  # nothing is that sure
    preds = Predictor(run).predict(texts)
    assert [p.label for p in preds] == [ABSTAIN_LABEL] * 2 and all(p.abstained for p in preds)
    _write_policy(run, SingleLabelPolicy(threshold=0.0))  # every text is label 1
    assert [p.label for p in Predictor(run).predict(texts)] == [RunDir.open(run).labels[1]] * 2


def test_onnx_backends_give_the_same_calibrated_probabilities(run: Path) -> None:
    from sentiment_hf.export.onnx import export_onnx

    # a set temperature (sharper than none), not a fitted one: the near-chance tiny run would be
    # fitted flat (T=20), and every backend would agree on ~0.5 whatever it computed
    _write_policy(run, SingleLabelPolicy(temperature=0.5))
    export_onnx(run, quantize="int8", parity=False)
    texts = SPREAD_TEXTS[:15]
    torch_probs = Predictor(run).predict_proba(texts)
    assert np.ptp(torch_probs[:, 1]) > 4 * 0.05  # the answers differ far more than int8's slack
    onnx_probs = Predictor(run, backend="onnx").predict_proba(texts)
    int8_probs = Predictor(run, backend="onnx-int8").predict_proba(texts)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)
    np.testing.assert_allclose(int8_probs, torch_probs, atol=0.05)  # int8 rounds the weights


def test_eval_reports_calibration_coverage_and_intervals(run: Path) -> None:
    from sentiment_hf.evaluation.evaluate import evaluate_model

    fit_policy(run)
    report = evaluate_model(run, split="test")
    m = report.metrics
    lo, hi = m["test_accuracy_ci95"]
    assert lo <= m["test_accuracy"] <= hi and hi - lo > 0
    from sentiment_hf.data.load import load_splits
    from sentiment_hf.tasks.calibration import accuracy_at_coverage, calibration_metrics

    cfg = RunDir.open(run).data_config()
    test = load_splits(cfg, splits=("test",)).splits["test"]
    probs = Predictor(run).predict_proba(test["text"])
    expected = accuracy_at_coverage(probs, np.asarray(test["label"]), 0.8)
    assert m["test_accuracy_at_80pct_coverage"] == pytest.approx(expected)
    # eval reads the whole split (1,066 rows); metrics.json keeps training's 64-row figures
    labels = np.asarray(test["label"])
    assert m["test_samples"] == len(labels) == 1066
    assert m["test_ece"] == pytest.approx(calibration_metrics(probs, labels)["ece"])
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
        ["calibrate", str(run), "--threshold-metric", "balanced_accuracy", "--json"],
        capsys,
        monkeypatch,
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


def test_training_fits_its_policy_on_the_model_and_rows_it_holds(
    tiny_backbone: Path, rt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sentiment train` calibrates without reloading the weights or the data it just had in
    memory, and what it stores is what a refit of the written run from disk stores."""
    from conftest import REPO, tiny_recipe_overrides

    import sentiment_hf.modeling as modeling
    from sentiment_hf import load_recipe, train

    out = tmp_path / "run"
    overrides = [
        *tiny_recipe_overrides(tiny_backbone, rt_dir, out),
        "policy.calibrate=true",
        "training.bf16=false",
    ]
    reloads: list[str] = []
    real_load_trained, real_load_splits = modeling.load_trained, RunDir.load_splits

    def counted_load_trained(*args, **kwargs):  # a spy: the real loader runs
        reloads.append("weights")
        return real_load_trained(*args, **kwargs)

    def counted_load_splits(self, *args, **kwargs):
        reloads.append("data")
        return real_load_splits(self, *args, **kwargs)

    monkeypatch.setattr(modeling, "load_trained", counted_load_trained)
    monkeypatch.setattr(RunDir, "load_splits", counted_load_splits)
    train(load_recipe(REPO / "recipes" / "base.yaml", overrides))
    assert reloads == []
    trained = json.loads((out / POLICY_FILE).read_text())
    trained_metrics = json.loads((out / "metrics.json").read_text())

    refit = fit_policy(out)  # the recipe's policy settings, the model and rows from disk
    assert reloads == ["data", "weights"]
    stored = json.loads((out / POLICY_FILE).read_text())
    assert stored["fitted_on"] == trained["fitted_on"]
    assert stored["temperature"] == pytest.approx(trained["temperature"], rel=1e-5)
    assert stored["threshold"] == trained["threshold"]
    for key, value in refit.metrics.items():
        assert trained_metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
