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
