"""Classification metrics, computed locally (no ``evaluate.load`` over the network); scikit-learn
is imported when a metric is computed, not when the CLI starts."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(
    labels: np.ndarray, preds: np.ndarray, num_labels: int = 2
) -> dict[str, float]:
    """Accuracy, precision, recall and F1 — binary (positive class 1) when two labels, and macro."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

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
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(labels, preds, labels=list(range(num_labels)))


def per_class_metrics(
    labels: np.ndarray, preds: np.ndarray, names: list[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every class, keyed by label name."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, support = precision_recall_fscore_support(
        labels, preds, labels=list(range(len(names))), zero_division=0
    )
    return {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }


def accuracy_by_length(
    lengths: np.ndarray, correct: np.ndarray, buckets: int = 4
) -> list[dict[str, Any]]:
    """Accuracy per length quantile bucket (quartiles by default; ties merge buckets).

    Each bucket is ``{"min": shortest, "max": longest, "samples": n, "accuracy": a}``, in order
    of length; the buckets partition the inputs, so their ``samples`` sum to ``len(lengths)``.
    """
    lengths, correct = np.asarray(lengths), np.asarray(correct, dtype=bool)
    cuts = np.unique(np.percentile(lengths, np.linspace(0, 100, buckets + 1)[1:-1]))
    which = np.searchsorted(cuts, lengths, side="left")  # bucket i: cuts[i-1] < length <= cuts[i]
    rows = []
    for b in range(len(cuts) + 1):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "min": int(lengths[mask].min()),
                    "max": int(lengths[mask].max()),
                    "samples": int(mask.sum()),
                    "accuracy": float(correct[mask].mean()),
                }
            )
    return rows


def fast_metric(name: str, num_labels: int) -> Any:
    """``accuracy``, ``f1`` or ``f1_macro`` (as :func:`classification_metrics` defines them) in
    plain numpy, fast enough for a bootstrap's thousand resamples."""

    def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
        return float((labels == preds).mean())

    def f1(labels: np.ndarray, preds: np.ndarray, macro: bool = False) -> float:
        classes = [1] if num_labels == 2 and not macro else range(num_labels)
        scores = []
        for c in classes:
            tp = np.sum((preds == c) & (labels == c))
            wrong = np.sum((preds == c) != (labels == c))  # false positives + false negatives
            scores.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
        return float(np.mean(scores))

    def f1_macro(labels: np.ndarray, preds: np.ndarray) -> float:
        return f1(labels, preds, macro=True)

    return {"accuracy": accuracy, "f1": f1, "f1_macro": f1_macro}[name]
