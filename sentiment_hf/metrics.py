"""Classification metrics, computed locally (no ``evaluate.load`` over the network)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(
    labels: np.ndarray, preds: np.ndarray, num_labels: int = 2
) -> dict[str, float]:
    """Accuracy, precision, recall and F1 — binary (positive class 1) when two labels, and macro."""
    labels = np.asarray(labels)
    preds = np.asarray(preds)
    out = {"accuracy": float(accuracy_score(labels, preds))}
    all_labels = list(range(num_labels))
    p, r, f, _ = precision_recall_fscore_support(
        labels, preds, average="macro", labels=all_labels, zero_division=0
    )
    out.update(precision_macro=float(p), recall_macro=float(r), f1_macro=float(f))
    if num_labels == 2:
        p, r, f, _ = precision_recall_fscore_support(
            labels, preds, average="binary", pos_label=1, zero_division=0
        )
        out.update(precision=float(p), recall=float(r), f1=float(f))
    else:
        out.update(precision=out["precision_macro"], recall=out["recall_macro"], f1=out["f1_macro"])
    return out


def confusion(labels: np.ndarray, preds: np.ndarray, num_labels: int) -> np.ndarray:
    """Confusion matrix, rows = true label, columns = predicted label."""
    return confusion_matrix(labels, preds, labels=list(range(num_labels)))


def make_compute_metrics(num_labels: int) -> Any:
    """A ``compute_metrics`` callable for the HF Trainer."""

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        return classification_metrics(labels, np.argmax(logits, axis=-1), num_labels)

    return compute_metrics


def fast_metric(name: str, num_labels: int) -> Any:
    """``accuracy`` or ``f1`` (as :func:`classification_metrics` defines them) in plain numpy,
    fast enough for a bootstrap's thousand resamples."""

    def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
        return float((labels == preds).mean())

    def f1(labels: np.ndarray, preds: np.ndarray) -> float:
        classes = [1] if num_labels == 2 else range(num_labels)
        scores = []
        for c in classes:
            tp = np.sum((preds == c) & (labels == c))
            wrong = np.sum((preds == c) != (labels == c))  # false positives + false negatives
            scores.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
        return float(np.mean(scores))

    return {"accuracy": accuracy, "f1": f1}[name]
