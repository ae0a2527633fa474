"""Multi-label classification: any subset of the labels per text (one sigmoid each, binary
cross-entropy), per-label calibration and thresholds; it never abstains."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.tasks import label_sets as ml
from sentiment_hf.tasks.base import POLICY_SPLITS, Counts, FittedPolicy, Mistake, Task, fitted_on
from sentiment_hf.tasks.calibration import calibration_metrics
from sentiment_hf.tasks.policy import (
    MULTI_LABEL_NO_ABSTAIN,
    MultiLabelPolicy,
    check_threshold_metric,
    tune_thresholds,
)


class MultiLabel(Task):
    """Any subset of the labels per text: one sigmoid per label, binary cross-entropy,
    per-label calibration and thresholds; it never abstains."""

    name = "multi-label"
    problem_type = ml.MULTI_LABEL
    multi_label = True
    policy_class = MultiLabelPolicy
    output_columns = ("label", "labels", "score")
    accuracy_name = "subset accuracy"
    report_parts = "eval_multi_label.html.j2"
    explainable = False
    selective = False
    mistake_columns = ("labels", "predicted", "score", "probabilities")

    def kind(self, labels: list[str]) -> str:
        return f"multi-label ({len(labels)} labels)"

    def encode(self, labels: Any) -> np.ndarray:
        return ml.multi_hot(labels)

    def score_logits(
        self, logits: np.ndarray, labels: np.ndarray, num_labels: int
    ) -> dict[str, float]:
        return ml.multilabel_metrics(labels, logits >= 0.0)  # each label at sigmoid >= 0.5

    def check_class_weights(self, weights: Any) -> None:
        if weights is not None:
            raise SentimentError(
                "training.class_weights weighs a single-label cross-entropy; this data is "
                "multi-label (one sigmoid per label): drop training.class_weights"
            )

    def fit_policy(
        self,
        logits: Mapping[str, np.ndarray],
        labels: Mapping[str, np.ndarray],
        *,
        threshold_metric: str | None,
        min_confidence: float | None,
        objective: str,
        source: str,
    ) -> FittedPolicy:
        if min_confidence is not None:
            raise SentimentError(MULTI_LABEL_NO_ABSTAIN)
        metric = check_threshold_metric(threshold_metric or "f1")
        val_logits, val_labels = logits["validation"], labels["validation"]
        method, scales, biases, cv = ml.fit_calibration(val_logits, val_labels)
        origin = fitted_on(val_labels, source, f"log loss, {ml.CV_FOLDS}-fold cross-validated")
        policy = MultiLabelPolicy(
            threshold_metric=metric,
            calibration=method,
            scales=scales,
            biases=biases,
            fitted_on={**origin, "cv_log_loss": cv},
        )
        policy.thresholds = tune_thresholds(policy.probabilities(val_logits), val_labels, metric)
        metrics: dict[str, float] = {"calibration_temperature": 1.0}
        for name, prefix in POLICY_SPLITS:
            metrics.update(pair_calibration_metrics(logits[name], labels[name], policy, prefix))
            decided = policy.decide_labels(policy.probabilities(logits[name]))
            scores = ml.multilabel_metrics(labels[name], decided)
            for key in ("accuracy", "f1_micro", "f1_macro"):
                metrics[f"{prefix}_policy_{key}"] = scores[key]
        test_logits, test_labels = logits["test"], labels["test"]
        curves = {
            "test, sigmoid": ml.as_binary(ml.sigmoid(test_logits), test_labels)[0],
            f"test, {method}": ml.as_binary(policy.probabilities(test_logits), test_labels)[0],
        }
        return FittedPolicy(
            policy,
            metrics,
            curves,
            test_labels.reshape(-1),
            "reliability of every (text, label) pair",
        )

    def correct(self, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
        return (np.asarray(labels) == np.asarray(preds)).all(axis=1)

    def headline(self, labels: list[str]) -> list[tuple[str, str]]:
        return [("Subset accuracy", "accuracy"), ("Micro F1", "f1"), ("Macro F1", "f1_macro")]

    def bootstrap_metric(self, name: str, num_labels: int) -> Callable[[Any, Any], float]:
        return ml.fast_metric(name)

    def evaluation_metrics(
        self,
        split: str,
        logits: np.ndarray,
        labels: np.ndarray,
        decided: tuple[np.ndarray, np.ndarray],
        policy: Any,
        names: list[str],
        train_counts: Mapping[str, int] | None,
    ) -> dict[str, Any]:
        preds = decided[0]
        out: dict[str, Any] = {
            f"{split}_{k}": v for k, v in ml.multilabel_metrics(labels, preds).items()
        }
        out.update(pair_calibration_metrics(logits, labels, policy, split))
        out[f"{split}_per_class"] = ml.per_label_metrics(labels, preds, names)
        return out

    def counts(self, labels: np.ndarray, preds: np.ndarray, names: list[str]) -> Counts:
        per_label = ml.per_label_metrics(labels, preds, names)
        columns = ("tp", "fn", "fp", "tn")
        return Counts(
            np.array([[per_label[n][c] for c in columns] for n in names]),
            list(names),
            ["true pos", "false neg", "false pos", "true neg"],
            "label",
            "",
            "per-label counts",
        )

    def reliability_curves(
        self, logits: np.ndarray, labels: np.ndarray, policy: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
        pair_probs, pair_labels = ml.as_binary(policy.probabilities(logits), labels)
        curves = {
            "sigmoid": ml.as_binary(ml.sigmoid(logits), labels)[0],
            str(policy.calibration or "policy"): pair_probs,
        }
        return curves, pair_labels, "reliability of (text, label) pairs"

    def mistakes(
        self, labels: np.ndarray, preds: np.ndarray, probs: np.ndarray, names: list[str]
    ) -> list[Mistake]:
        # a mistake's weight: the probability behind its most confident wrong decision
        wrong = np.where(preds != labels, np.where(preds == 1, probs, 1 - probs), 0.0).max(axis=1)
        return [
            Mistake(
                int(i),
                _names(labels[i], names),
                _names(preds[i], names),
                float(wrong[i]),
                (json.dumps(dict(zip(names, np.round(probs[i], 4).tolist(), strict=True))),),
            )
            for i in np.flatnonzero(~self.correct(labels, preds))
        ]


def pair_calibration_metrics(
    logits: np.ndarray, labels: np.ndarray, policy: MultiLabelPolicy, prefix: str
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


def _names(hot: np.ndarray, names: list[str]) -> str:
    return ", ".join(n for n, h in zip(names, hot, strict=True) if h) or "(none)"
