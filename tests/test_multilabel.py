"""Multi-label end to end: parsing, thresholds, calibration, train → eval → predict → serve.

The data are real rt-polarity sentences tagged by the fixed keyword rules of
``scripts/multilabel_data.py`` (``positive`` from the file it came from, ``mentions_acting``,
``mentions_plot``, ``mentions_humor`` from whole-word keywords); one tiny-model training per module.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, tiny_recipe_overrides

from sentiment_hf import load_recipe, train
from sentiment_hf.config.recipe import DataConfig
from sentiment_hf.data.load import load_splits
from sentiment_hf.errors import SentimentError
from sentiment_hf.tasks.label_sets import (
    MULTI_LABEL,
    fit_calibration,
    log_loss,
    multilabel_metrics,
    per_label_metrics,
)
from sentiment_hf.tasks.policy import MultiLabelPolicy, tune_thresholds

spec = importlib.util.spec_from_file_location(
    "multilabel_data", REPO / "scripts" / "multilabel_data.py"
)
mldata = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mldata)

TEXTS = [
    "the acting is superb and the story moves along nicely .",
    "a dull plot and jokes that fall flat",
    "an uneven film",
]


@pytest.fixture(scope="module")
def ml_splits(rt_dir: Path) -> dict[str, list[dict]]:
    return mldata.build(rt_dir, per_split=96)


@pytest.fixture(scope="module")
def ml_jsonl(ml_splits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ml-jsonl")
    mldata.write(ml_splits, out, "jsonl")
    return out


# ------------------------------------------------------------------ data
def test_list_labels_and_01_columns_give_the_same_multi_hot(ml_splits, ml_jsonl, tmp_path) -> None:
    lists = load_splits(DataConfig(source=str(ml_jsonl), label_column="labels"))
    assert lists.task.multi_label
    assert lists.label_names == sorted(mldata.LABELS)
    train_rows = ml_splits["train"]
    for row, hot in zip(train_rows, lists.splits["train"]["label"], strict=True):
        expected = [float(n in row["labels"]) for n in lists.label_names]
        assert hot == expected

    mldata.write(ml_splits, tmp_path / "cols", "columns")
    cols = load_splits(DataConfig(source=str(tmp_path / "cols"), label_columns=mldata.LABELS))
    assert cols.task.multi_label and cols.label_names == mldata.LABELS
    by_name = {n: i for i, n in enumerate(cols.label_names)}
    for a, b in zip(lists.splits["test"]["label"], cols.splits["test"]["label"], strict=True):
        assert [a[lists.label_names.index(n)] for n in mldata.LABELS] == [
            b[by_name[n]] for n in mldata.LABELS
        ]

    # CSV cells holding JSON lists read like JSONL lists; the fingerprint follows the labels
    csv_dir = tmp_path / "csvlists"
    csv_dir.mkdir()
    for split in ("train", "validation", "test"):
        rows = ml_splits[split]
        import csv

        with open(csv_dir / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "labels"])
            writer.writerows([r["text"], json.dumps(r["labels"])] for r in rows)
    from_csv = load_splits(DataConfig(source=str(csv_dir), label_column="labels"))
    assert from_csv.fingerprint == lists.fingerprint
    flipped = [dict(r) for r in ml_splits["test"]]
    flipped[0]["labels"] = [] if flipped[0]["labels"] else ["positive"]
    mldata.write({**ml_splits, "test": flipped}, tmp_path / "flip", "jsonl")
    other = load_splits(DataConfig(source=str(tmp_path / "flip"), label_column="labels"))
    assert other.fingerprint != lists.fingerprint


def _write_jsonl(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        with open(folder / f"{split}.jsonl", "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)
    return folder


@pytest.mark.parametrize(
    ("rows", "overrides", "message"),
    [
        ([{"text": "a", "label": ["x", "y"]}, {"text": "b", "label": "x"}], {}, "not a JSON list"),
        (
            [{"text": "a", "label": ["x", "y"]}, {"text": "b", "label": ["z"]}],
            {"label_names": ["x", "y"]},
            "outside the declared set",
        ),
        ([{"text": "a", "label": ["x"]}, {"text": "b", "label": []}], {}, "at least two distinct"),
        ([{"text": "a", "label": ["x", 3]}], {}, "not a list of label names"),
        ([{"text": "a", "x": 1, "y": 2}], {"label_columns": ["x", "y"]}, "is not 0 or 1"),
        ([{"text": "a", "x": 1}], {"label_columns": ["x", "y"]}, "named in data.label_columns"),
    ],
)
def test_bad_multi_label_data_is_one_clear_error(rows, overrides, message, tmp_path) -> None:
    source = _write_jsonl(tmp_path / "bad", rows)
    with pytest.raises(SentimentError, match=message):
        load_splits(DataConfig(source=str(source), **overrides))


def test_bad_labels_stop_the_cli_with_exit_2(
    tmp_path: Path, minilm_dir: Path, monkeypatch, capsys
) -> None:
    from sentiment_hf.cli import main

    source = _write_jsonl(
        tmp_path / "bad", [{"text": "a", "label": ["x", "y"]}, {"text": "b", "label": "x"}]
    )
    out = tmp_path / "run"
    argv = ["sentiment", "train", str(REPO / "recipes" / "base.yaml")]
    monkeypatch.setattr(sys, "argv", argv + tiny_recipe_overrides(minilm_dir, source, out))
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: train row 1: label 'x' is not a JSON list of names")
    assert not any("Traceback" in line for line in err)
    assert not out.exists()


# ------------------------------------------------------------------ thresholds, calibration
def test_threshold_tuning_finds_the_f1_optimal_threshold_per_label() -> None:
    # label 0 separates perfectly between 0.30 and 0.35 (ties go to the one nearest 0.5: 0.35);
    # label 1 only reaches F1 = 1 above 0.80 (its negatives sit at 0.6-0.8)
    p0 = [0.10, 0.20, 0.30, 0.35, 0.40, 0.60, 0.70]
    y0 = [0, 0, 0, 1, 1, 1, 1]
    p1 = [0.60, 0.70, 0.80, 0.81, 0.90, 0.95, 0.99]
    y1 = [0, 0, 0, 1, 1, 1, 1]
    probs, labels = np.array([p0, p1]).T, np.array([y0, y1]).T
    thresholds = tune_thresholds(probs, labels, "f1")
    assert thresholds == [0.35, 0.81]
    preds = probs >= np.array(thresholds)
    assert multilabel_metrics(labels, preds)["f1_macro"] == 1.0
    assert multilabel_metrics(labels, probs >= 0.5)["f1_macro"] < 1.0


def test_metrics_on_a_hand_made_example() -> None:
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    p = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 0, 0]])
    m = multilabel_metrics(y, p)
    assert m["accuracy"] == 0.5  # rows 0 and 3 are exact
    # micro: tp 4, fp 1, fn 1 -> P = R = F1 = 0.8
    assert m["f1_micro"] == pytest.approx(0.8) and m["precision_micro"] == pytest.approx(0.8)
    per = per_label_metrics(y, p, ["a", "b", "c"])
    assert per["b"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
        "tp": 1,
        "fp": 0,
        "fn": 1,
        "tn": 2,
    }
    assert m["f1_macro"] == pytest.approx(np.mean([per[n]["f1"] for n in "abc"]))
    assert m["hamming_loss"] == pytest.approx(2 / 12)


def test_calibration_is_fitted_only_when_it_measures_better() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    true = rng.normal(0, 2, size=(n, 3))
    labels = (rng.random((n, 3)) < 1 / (1 + np.exp(-true))).astype(int)
    method, *_ = fit_calibration(true[: n // 2], labels[: n // 2])
    assert method == "none"  # already calibrated logits stay as they are
    for logits, wanted in ((true * 3.0, "temperature"), (true * 3.0 + 2.0, "platt")):
        method, scales, biases, cv = fit_calibration(logits[: n // 2], labels[: n // 2])
        assert method == wanted
        assert cv[wanted] < cv["none"]
        held = logits[n // 2 :] * np.array(scales) + np.array(biases)
        assert log_loss(held, labels[n // 2 :]) < log_loss(logits[n // 2 :], labels[n // 2 :])


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def ml_run(ml_jsonl: Path, tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ml-runs") / "ml"
    overrides = [
        *tiny_recipe_overrides(tiny_backbone, ml_jsonl, out),
        "data.label_column=labels",
        "training.num_train_epochs=3",
    ]
    train(load_recipe(REPO / "recipes" / "base.yaml", overrides))
    return out


def test_training_uses_bce_and_records_the_problem_type(ml_run: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = json.loads((ml_run / "config.json").read_text())
    assert config["problem_type"] == MULTI_LABEL
    assert list(config["id2label"].values()) == sorted(mldata.LABELS)
    model = AutoModelForSequenceClassification.from_pretrained(ml_run).eval()
    enc = AutoTokenizer.from_pretrained(ml_run)(TEXTS, padding=True, return_tensors="pt")
    target = torch.tensor([[1.0, 1, 0, 1], [0, 1, 1, 0], [0, 0, 0, 0]])
    with torch.no_grad():
        out = model(**enc, labels=target)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, target)
    assert float(out.loss) == pytest.approx(float(expected), rel=1e-5)
    metrics = json.loads((ml_run / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "test_f1_micro",
        "test_f1_macro",
        "eval_ece",
        "test_ece_uncalibrated",
    ):
        assert key in metrics


def test_policy_has_per_label_thresholds_tuned_on_validation(ml_run: Path, ml_jsonl: Path) -> None:
    from sentiment_hf.inference.predictor import Predictor

    policy = json.loads((ml_run / "policy.json").read_text())
    assert policy["multi_label"] is True
    assert policy["calibration"] in ("none", "temperature", "platt")
    assert len(policy["thresholds"]) == len(mldata.LABELS)
    # the stored thresholds are the F1-optimal ones of the stored calibration on validation
    val = load_splits(
        DataConfig(source=str(ml_jsonl), label_column="labels"), splits=("validation",)
    )
    logits = Predictor(ml_run).predict_logits(val.splits["validation"]["text"])
    probs = MultiLabelPolicy.from_dict(policy).probabilities(logits)
    assert (
        tune_thresholds(probs, np.array(val.splits["validation"]["label"])) == policy["thresholds"]
    )


def test_eval_writes_per_label_figures_and_report(ml_run: Path, ml_jsonl: Path) -> None:
    from sentiment_hf import evaluate_model

    report = evaluate_model(ml_run)
    m = report.metrics
    rows = [json.loads(x) for x in (ml_jsonl / "test.jsonl").read_text().splitlines()]
    for name, row in m["test_per_class"].items():
        assert row["support"] == sum(name in r["labels"] for r in rows)
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == len(rows)
    assert m["test_samples"] == len(rows)
    lo, hi = m["test_f1_ci95"]
    assert lo <= m["test_f1_micro"] <= hi
    page = report.report_path.read_text()
    assert "Subset accuracy" in page and "Micro F1" in page and "mentions_plot" in page
    assert report.confusion_path.is_file() and report.reliability_path.is_file()


def test_predict_export_and_serve_return_every_label_above_its_threshold(
    ml_run: Path, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from sentiment_hf.export.onnx import export_onnx
    from sentiment_hf.inference.predictor import Predictor
    from sentiment_hf.serve import create_app

    policy = json.loads((ml_run / "policy.json").read_text())
    names = sorted(mldata.LABELS)
    torch_preds = Predictor(ml_run).predict(TEXTS)
    for pred in torch_preds:
        expected = [
            n
            for n, t in zip(names, policy["thresholds"], strict=True)
            if pred.probabilities[n] >= t
        ]
        assert sorted(pred.labels) == expected
        assert pred.label == (max(pred.labels, key=pred.probabilities.get) if pred.labels else "")
        assert not pred.abstained

    result = export_onnx(ml_run, quantize="int8")
    parity = result.parity
    assert parity["problem_type"] == MULTI_LABEL
    assert parity["onnx"]["max_abs_prob_diff"] < 1e-4
    assert parity["onnx"]["argmax_agreement_pct"] == 100.0
    onnx_preds = Predictor(ml_run, backend="onnx").predict(TEXTS)
    for a, b in zip(torch_preds, onnx_preds, strict=True):
        assert a.labels == b.labels
        assert b.probabilities == pytest.approx(a.probabilities, abs=1e-4)

    db = tmp_path / "requests.db"
    app = create_app(ml_run, backend="onnx", request_log=db, log_flush_interval_s=0.05)
    with TestClient(app) as client:
        body = client.post("/predict", json={"texts": TEXTS}).json()
        assert body["multi_label"] is True
        for got, want in zip(body["predictions"], onnx_preds, strict=True):
            assert got["labels"] == want.labels and got["label"] == want.label
            assert set(got["probabilities"]) == set(names)
        assert client.get("/ready").json()["multi_label"] is True
        counted: dict[str, int] = {}
        for p in onnx_preds:
            for name in p.labels or ["(none)"]:
                counted[name] = counted.get(name, 0) + 1
        exposition = client.get("/metrics").text
        for name, count in counted.items():
            assert f'sentiment_predictions_total{{label="{name}"}} {float(count)}' in exposition
        bad = client.post("/predict", json={"texts": []})
        assert bad.status_code == 422
        assert "pred.labels" in client.get("/").text
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from requests").fetchone()[0] >= len(TEXTS)


def test_card_and_drift_run_on_a_multi_label_run(
    ml_run: Path, ml_jsonl: Path, tmp_path: Path
) -> None:
    import time

    from sentiment_hf.hub.card import build_model_card
    from sentiment_hf.monitoring import DriftConfig, detect_drift
    from sentiment_hf.serve.requestlog import LoggedPrediction, RequestLog, RequestLogConfig

    card = build_model_card(ml_run, "org/ml")
    assert "multi-label (4 labels)" in card
    rows = [json.loads(x) for x in (ml_jsonl / "test.jsonl").read_text().splitlines()]
    log = RequestLog(RequestLogConfig(path=tmp_path / "r.db", retention_days=None))
    log.append(
        [
            LoggedPrediction(time.time(), r["text"], "positive", 0.9, {}, 1.0, "v", "torch")
            for r in rows
        ]
    )
    log.close()
    report = detect_drift(
        DriftConfig(
            ml_run,
            tmp_path / "r.db",
            output_dir=tmp_path / "drift",
            reference_size=90,
            embedding_sample=60,
            permutations=50,
        )
    )
    # the current side's confidence is each text's highest per-label sigmoid, as the predictor
    # answers; a softmax over the 4 labels would give other numbers (they would sum to 1)
    from sentiment_hf.inference.predictor import Predictor

    probs = Predictor(ml_run).predict_proba([r["text"] for r in rows])
    assert not np.allclose(probs.sum(axis=1), 1.0, atol=0.05)
    confidence = next(c for c in report.checks if c.name == "confidence")
    assert confidence.current == pytest.approx(float(probs.max(axis=1).mean()), abs=1e-4)


def test_a_multi_label_run_without_a_policy_answers_per_label(
    ml_run: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Trained with policy.calibrate=false a run has no policy.json: its answers are still
    per-label sigmoids decided at 0.5 each, never a softmax over the labels."""
    import shutil

    from cli_inprocess import run_main

    from sentiment_hf import Predictor
    from sentiment_hf.tasks.label_sets import sigmoid

    run = Path(shutil.copytree(ml_run, tmp_path / "run", ignore=shutil.ignore_patterns("check*")))
    (run / "policy.json").unlink()  # what training with policy.calibrate=false leaves
    predictor = Predictor(run)
    assert predictor.run.task.multi_label and isinstance(predictor.policy, MultiLabelPolicy)
    logits = predictor.predict_logits(TEXTS)
    np.testing.assert_allclose(predictor.predict_proba(TEXTS), sigmoid(logits), atol=1e-6)
    shown = run_main(["predict", str(run), "--json", *TEXTS], capsys, monkeypatch)
    assert shown.code == 0, shown.stderr
    for line, row in zip(shown.stdout.splitlines(), sigmoid(logits), strict=True):
        answer = json.loads(line)
        names = [n for n, p in answer["probabilities"].items() if p >= 0.5]
        assert sorted(answer["labels"]) == sorted(names)
        assert list(answer["probabilities"].values()) == pytest.approx(row.tolist(), abs=1e-6)


def test_single_label_data_for_a_multi_label_run_is_refused(ml_run: Path, tmp_path: Path) -> None:
    from sentiment_hf import evaluate_model
    from sentiment_hf.evaluation.calibrate import fit_policy

    single = _write_jsonl(tmp_path / "single", [{"text": "fine", "labels": "positive"}] * 4)
    with pytest.raises(SentimentError, match=r"multi-label but .* holds single-label data"):
        evaluate_model(ml_run, data=str(single))
    with pytest.raises(SentimentError, match=r"min_confidence .* single-label runs only"):
        fit_policy(ml_run, min_confidence=0.6)
