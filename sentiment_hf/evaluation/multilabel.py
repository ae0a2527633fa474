"""Multi-label runs through ``sentiment calibrate`` and ``sentiment eval``.

:func:`fit_multilabel_policy` fits the per-label calibration and thresholds on validation and
stores them in ``policy.json``; :func:`evaluate_multilabel` writes the same report files as a
single-label eval, with per-label figures (precision / recall / F1 and the 2x2 counts of every
label) in place of the NxN confusion matrix. Calibration measures treat every (text, label) pair
as one binary decision (NLL = mean log loss, Brier over both outcomes, 10-bin top-label ECE).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.evaluation.plots import save_counts_heatmap
from sentiment_hf.fileio import write_json, write_text_atomic
from sentiment_hf.longtext import LongTextCounts
from sentiment_hf.tasks import multilabel as ml
from sentiment_hf.tasks.calibration import (
    BOOTSTRAP_METRICS,
    bootstrap_interval,
    calibration_metrics,
    plot_reliability,
)

if TYPE_CHECKING:
    from sentiment_hf.evaluation.calibrate import PolicyReport
    from sentiment_hf.evaluation.evaluate import EvalReport
    from sentiment_hf.rundir import RunDir
    from sentiment_hf.tasks.policy import DecisionPolicy


def _load(
    run: RunDir, data: str | None, splits: tuple[str, ...], limits: bool = False
) -> tuple[Any, str]:
    """:func:`~sentiment_hf.data.load.load_run_data` for this module: (splits, source)."""
    from sentiment_hf.data.load import load_run_data

    loaded = load_run_data(run, splits, data, limits=limits, whole_file=len(splits) == 1)
    return loaded.splits, loaded.source


def pair_calibration_metrics(
    logits: np.ndarray, labels: np.ndarray, policy: DecisionPolicy, prefix: str
) -> dict[str, float]:
    """``{prefix}_{nll,brier,ece,mean_confidence}`` (calibrated) and ``..._uncalibrated``
    (plain sigmoid) over every (text, label) pair."""
    out = {}
    pairs = (("_uncalibrated", ml.sigmoid(logits)), ("", policy.probabilities(logits)))
    for suffix, probs in pairs:
        for key, value in calibration_metrics(*ml.as_binary(probs, labels)).items():
            if key != "accuracy":
                out[f"{prefix}_{key}{suffix}"] = value
    return out


def fit_multilabel_policy(
    run: RunDir,
    threshold_metric: str | None = None,
    min_confidence: float | None = None,
    data: str | None = None,
    batch_size: int = 64,
) -> PolicyReport:
    """Per-label calibration (none / temperature / Platt, chosen by cross-validated log loss)
    and per-label thresholds (``threshold_metric``, default F1) fitted on validation."""
    from sentiment_hf.evaluation.calibrate import PolicyReport, store_policy
    from sentiment_hf.inference.predictor import Predictor
    from sentiment_hf.rundir import RELIABILITY_FILE
    from sentiment_hf.tasks.policy import DecisionPolicy, check_threshold_metric

    if min_confidence is not None:
        raise SentimentError(
            "policy.min_confidence (the abstain band) applies to single-label runs only; a "
            "multi-label run answers every label above its threshold: drop min_confidence"
        )
    metric = check_threshold_metric(threshold_metric or "f1")
    splits, source = _load(run, data, ("validation", "test"), limits=True)
    predictor = Predictor(run, batch_size=batch_size, progress="calibrate")
    logits = {name: predictor.predict_logits(splits[name]["text"], strict=False) for name in splits}
    labels = {name: ml.multi_hot(splits[name]["label"]) for name in splits}
    method, scales, biases, cv = ml.fit_calibration(logits["validation"], labels["validation"])
    policy = DecisionPolicy(
        threshold_metric=metric,
        multi_label=True,
        calibration=method,
        scales=scales,
        biases=biases,
        fitted_on={
            "split": "validation",
            "samples": len(labels["validation"]),
            "source": source,
            "objective": f"log loss, {ml.CV_FOLDS}-fold cross-validated",
            "cv_log_loss": cv,
        },
    )
    policy.thresholds = ml.tune_thresholds(
        policy.probabilities(logits["validation"]), labels["validation"], metric
    )
    metrics: dict[str, float] = {"calibration_temperature": 1.0}
    for name, prefix in (("validation", "eval"), ("test", "test")):
        metrics.update(pair_calibration_metrics(logits[name], labels[name], policy, prefix))
        decided = policy.decide_labels(policy.probabilities(logits[name]))
        scores = ml.multilabel_metrics(labels[name], decided)
        for key in ("accuracy", "f1_micro", "f1_macro"):
            metrics[f"{prefix}_policy_{key}"] = scores[key]
    policy_path = store_policy(run, policy, metrics, own=data is None)
    test_labels = labels["test"]
    reliability_path = plot_reliability(
        {
            "test, sigmoid": ml.as_binary(ml.sigmoid(logits["test"]), test_labels)[0],
            f"test, {method}": ml.as_binary(policy.probabilities(logits["test"]), test_labels)[0],
        },
        test_labels.reshape(-1),
        run.file(RELIABILITY_FILE),
        f"{run.name}: reliability of every (text, label) pair",
    )
    return PolicyReport(policy, metrics, policy_path, reliability_path)


def plot_per_label(per_label: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """A heat map of every label's TP / FN / FP / TN counts (rows: labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_label)
    columns = ("tp", "fn", "fp", "tn")
    matrix = np.array([[per_label[n][c] for c in columns] for n in names])
    fig, ax = plt.subplots(figsize=(4.8, 1.4 + 0.4 * len(names)), dpi=120)
    ax.imshow(matrix, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(columns)), ["true pos", "false neg", "false pos", "true neg"])
    ax.set_yticks(range(len(names)), names)
    ax.set_title(title, fontsize=9)
    return save_counts_heatmap(fig, ax, matrix, path)


def _names(hot: np.ndarray, names: list[str]) -> str:
    return ", ".join(n for n, h in zip(names, hot, strict=True) if h) or "(none)"


def evaluate_multilabel(
    run: RunDir,
    split: str,
    data: str | None,
    output_dir: str | Path | None,
    batch_size: int,
    backend: str,
) -> EvalReport:
    """:func:`~sentiment_hf.evaluation.evaluate.evaluate_model` for a multi-label run."""
    from sentiment_hf.evaluation.evaluate import EvalReport
    from sentiment_hf.evaluation.plots import plot_accuracy_by_length
    from sentiment_hf.evaluation.report import Mistake, render_eval_report
    from sentiment_hf.inference.predictor import Predictor
    from sentiment_hf.rundir import EVAL_METRICS_FILE
    from sentiment_hf.tasks.metrics import accuracy_by_length

    predictor = Predictor(run, backend=backend, batch_size=batch_size, progress=f"eval {split}")
    names = predictor.labels
    splits, source = _load(run, data, (split,))
    texts, labels = list(splits[split]["text"]), ml.multi_hot(splits[split]["label"])
    counts = LongTextCounts()
    logits = predictor.predict_logits(texts, counts, strict=False)
    probs = predictor.policy.probabilities(logits)
    preds = predictor.policy.decide_labels(probs).astype(np.int64)
    metrics: dict[str, Any] = {
        f"{split}_{k}": v for k, v in ml.multilabel_metrics(labels, preds).items()
    }
    metrics[f"{split}_samples"] = len(texts)
    metrics.update(counts.to_metrics(split))
    metrics.update(pair_calibration_metrics(logits, labels, predictor.policy, split))
    for name in BOOTSTRAP_METRICS:
        lo, hi = bootstrap_interval(labels, preds, ml.fast_metric(name))
        metrics[f"{split}_{name}_ci95"] = [lo, hi]
    per_label = ml.per_label_metrics(labels, preds, names)
    metrics[f"{split}_per_class"] = per_label
    exact = (labels == preds).all(axis=1)
    tokens = predictor.tokenizer(texts, add_special_tokens=False)["input_ids"]
    by_length = accuracy_by_length(np.array([len(t) for t in tokens]), exact)
    metrics[f"{split}_accuracy_by_length"] = by_length
    out = Path(output_dir) if output_dir else run.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = write_json(
        out / EVAL_METRICS_FILE.format(split=split),
        {**metrics, "data_source": source, "problem_type": ml.MULTI_LABEL},
    )
    title = f"{run.path.name}: {split}"
    confusion_path = plot_per_label(
        per_label, out / f"{split}_confusion.png", f"{title}: per-label counts"
    )
    pair_probs, pair_labels = ml.as_binary(probs, labels)
    reliability_path = plot_reliability(
        {
            "sigmoid": ml.as_binary(ml.sigmoid(logits), labels)[0],
            str(predictor.policy.calibration or "policy"): pair_probs,
        },
        pair_labels,
        out / f"{split}_reliability.png",
        f"{title}: reliability of (text, label) pairs",
    )
    length_path = plot_accuracy_by_length(
        by_length,
        metrics[f"{split}_accuracy"],
        out / f"{split}_accuracy_by_length.png",
        f"{title}: subset accuracy by length",
    )
    # a mistake's weight: the probability behind its most confident wrong decision
    wrong_conf = np.where(preds != labels, np.where(preds == 1, probs, 1 - probs), 0.0).max(axis=1)
    errors_path = out / f"{split}_misclassified.csv"
    with open(errors_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "text", "labels", "predicted", "score", "probabilities"])
        for i in np.flatnonzero(~exact):
            writer.writerow(
                [
                    int(i),
                    texts[i],
                    _names(labels[i], names),
                    _names(preds[i], names),
                    f"{wrong_conf[i]:.4f}",
                    json.dumps(dict(zip(names, np.round(probs[i], 4).tolist(), strict=True))),
                ]
            )
    order = np.flatnonzero(~exact)
    order = order[np.argsort(-wrong_conf[order], kind="stable")][:10]
    mistakes = [
        Mistake(
            int(i),
            texts[i],
            _names(labels[i], names),
            _names(preds[i], names),
            float(wrong_conf[i]),
        )
        for i in order
    ]
    page = render_eval_report(
        split,
        metrics,
        names,
        {"confusion": confusion_path, "reliability": reliability_path, "length": length_path},
        mistakes,
        by_length,
        title=run.path.name,
        policy=predictor.policy.to_dict(),
        details={"data": source, "backend": backend, "max_length": predictor.max_length},
        multi_label=True,
    )
    report_path = write_text_atomic(out / f"{split}_report.html", page)
    return EvalReport(
        split=split,
        metrics=metrics,
        metrics_path=metrics_path,
        confusion_path=confusion_path,
        errors_path=errors_path,
        reliability_path=reliability_path,
        length_path=length_path,
        report_path=report_path,
    )
