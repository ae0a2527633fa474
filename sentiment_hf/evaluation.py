"""Evaluate a trained model directory on a split: metrics JSON, confusion matrix PNG, errors CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.calibration import (
    COVERAGES,
    accuracy_at_coverage,
    bootstrap_interval,
    plot_reliability,
    plot_risk_coverage,
    softmax,
)
from sentiment_hf.data import load_splits
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_json
from sentiment_hf.metrics import classification_metrics, confusion, fast_metric
from sentiment_hf.policy import DecisionPolicy, policy_metrics
from sentiment_hf.predict import Predictor
from sentiment_hf.rundir import RunDir, open_run

#: Metrics eval brackets with a bootstrap 95 % interval (percentile method, seeded).
BOOTSTRAP_METRICS = ("accuracy", "f1")
BOOTSTRAP_RESAMPLES = 1000
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


@dataclass
class EvalReport:
    """Metrics of one evaluation and the files written for it."""

    split: str
    metrics: dict[str, float]
    metrics_path: Path
    confusion_path: Path
    errors_path: Path
    reliability_path: Path | None = None
    risk_coverage_path: Path | None = None


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    """Save a labelled confusion-matrix heat map as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2 + 0.4 * len(labels), 3 + 0.4 * len(labels)), dpi=120)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = matrix.max() or 1
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > peak / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate_model(
    model_dir: str | Path | RunDir,
    split: str = "test",
    data: str | None = None,
    output_dir: str | Path | None = None,
    batch_size: int = 64,
    backend: str = "torch",
) -> EvalReport:
    """Evaluate ``model_dir`` on ``split`` of its recipe's data (or ``data``) and write reports.

    Files go to ``output_dir`` (default ``MODEL_DIR/eval``): ``{split}_metrics.json``,
    ``{split}_confusion.png`` and ``{split}_misclassified.csv``.
    """
    run = open_run(model_dir)
    split = SPLIT_ALIASES.get(split, split)
    if split not in ("train", "validation", "test"):
        raise SentimentError(f"unknown split {split!r}; use train, validation or test")
    predictor = Predictor(run, backend=backend, batch_size=batch_size)
    cfg = run.data_config(data)
    cfg.label_names = predictor.labels
    dataset = load_splits(cfg, splits=(split,)).splits[split]
    texts, labels = dataset["text"], np.asarray(dataset["label"])
    logits = predictor.predict_logits(texts)
    probs = predictor.policy.probabilities(logits)
    preds, abstained = predictor.policy.decide(probs)
    n = len(predictor.labels)
    metrics: dict[str, Any] = {
        f"{split}_{k}": v for k, v in classification_metrics(labels, preds, n).items()
    }
    metrics[f"{split}_samples"] = len(texts)
    metrics.update(trust_metrics(split, logits, labels, preds, abstained, predictor.policy, n))
    out = Path(output_dir) if output_dir else run.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = write_json(out / f"{split}_metrics.json", {**metrics, "data_source": cfg.source})
    title = f"{run.path.name}: {split}"
    confusion_path = plot_confusion(
        confusion(labels, preds, n),
        predictor.labels,
        out / f"{split}_confusion.png",
        f"{title} (acc {metrics[f'{split}_accuracy']:.3f})",
    )
    curves = {"uncalibrated": softmax(logits)}
    if predictor.policy.temperature != 1.0:
        curves[f"T={predictor.policy.temperature:.2f}"] = probs
    reliability_path = plot_reliability(
        curves, labels, out / f"{split}_reliability.png", f"{title}: reliability"
    )
    risk_path = plot_risk_coverage(
        probs, labels, out / f"{split}_risk_coverage.png", f"{title}: risk-coverage"
    )
    errors_path = out / f"{split}_misclassified.csv"
    with open(errors_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "text", "label", "predicted", "score"])
        for i in np.flatnonzero(preds != labels):
            writer.writerow(
                [
                    int(i),
                    texts[i],
                    predictor.labels[labels[i]],
                    predictor.labels[preds[i]],
                    f"{probs[i, preds[i]]:.4f}",
                ]
            )
    return EvalReport(
        split, metrics, metrics_path, confusion_path, errors_path, reliability_path, risk_path
    )


def trust_metrics(
    split: str,
    logits: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    abstained: np.ndarray,
    policy: DecisionPolicy,
    num_labels: int,
) -> dict[str, Any]:
    """Calibration (before/after), selective accuracy, abstention and bootstrap intervals."""
    out: dict[str, Any] = policy_metrics(logits, labels, policy, split)
    probs = policy.probabilities(logits)
    for coverage in COVERAGES:
        key = f"{split}_accuracy_at_{round(coverage * 100)}pct_coverage"
        out[key] = accuracy_at_coverage(probs, labels, coverage)
    if policy.min_confidence is not None:
        answered = ~abstained
        out[f"{split}_coverage"] = float(answered.mean())
        out[f"{split}_answered_accuracy"] = (
            float((preds[answered] == labels[answered]).mean()) if answered.any() else None
        )
    for name in BOOTSTRAP_METRICS:
        metric = fast_metric(name, num_labels)
        lo, hi = bootstrap_interval(labels, preds, metric, n_resamples=BOOTSTRAP_RESAMPLES)
        out[f"{split}_{name}_ci95"] = [lo, hi]
    return out
