"""Single-label classification: one class per text (softmax, cross-entropy), temperature
scaling, an optional binary threshold and abstain band."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from sentiment_hf.imbalance import balance_metrics, class_counts, order_metrics
from sentiment_hf.tasks.base import POLICY_SPLITS, Counts, FittedPolicy, Mistake, Task, fitted_on
from sentiment_hf.tasks.calibration import (
    COVERAGES,
    accuracy_at_coverage,
    check_objective,
    coverage_key,
    fit_temperature,
    softmax,
)
from sentiment_hf.tasks.metrics import (
    classification_metrics,
    confusion,
    fast_metric,
    per_class_metrics,
)
from sentiment_hf.tasks.policy import (
    SingleLabelPolicy,
    check_threshold_metric,
    policy_metrics,
    tune_threshold,
)


class SingleLabel(Task):
    """One class per text: softmax over the labels, cross-entropy, temperature scaling, an
    optional binary threshold and abstain band."""

    name = "single-label"
    problem_type = None
    multi_label = False
    policy_class = SingleLabelPolicy
    output_columns = ("label", "score", "abstained")
    accuracy_name = "accuracy"
    report_parts = "eval_single_label.html.j2"
    explainable = True
    selective = True
    mistake_columns = ("label", "predicted", "score")

    def kind(self, labels: list[str]) -> str:
        return "binary" if len(labels) == 2 else f"{len(labels)}-class"

    def encode(self, labels: Any) -> np.ndarray:
        return np.asarray(labels)

    def score_logits(
        self, logits: np.ndarray, labels: np.ndarray, num_labels: int
    ) -> dict[str, float]:
        return classification_metrics(labels, np.argmax(logits, axis=-1), num_labels)

    def check_class_weights(self, weights: Any) -> None:
        return None

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
        check_objective(objective)
        if threshold_metric is not None:
            check_threshold_metric(threshold_metric)
        val_logits, val_labels = logits["validation"], labels["validation"]
        temperature = fit_temperature(val_logits, val_labels, objective)
        policy = SingleLabelPolicy(
            temperature=temperature,
            threshold_metric=threshold_metric,
            min_confidence=min_confidence,
            fitted_on=fitted_on(val_labels, source, objective),
        )
        if threshold_metric is not None:
            val_probs = policy.probabilities(val_logits)
            policy.threshold = tune_threshold(val_probs, val_labels, threshold_metric)
        metrics = {"calibration_temperature": temperature}
        for name, prefix in POLICY_SPLITS:
            metrics.update(policy_metrics(logits[name], labels[name], policy, prefix))
        curves = {
            "test, uncalibrated": softmax(logits["test"]),
            f"test, T={temperature:.2f}": policy.probabilities(logits["test"]),
        }
        return FittedPolicy(
            policy, metrics, curves, labels["test"], "reliability (T fitted on validation)"
        )

    def correct(self, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
        return np.asarray(preds) == np.asarray(labels)

    def headline(self, labels: list[str]) -> list[tuple[str, str]]:
        cards = [("Accuracy", "accuracy"), ("Macro F1", "f1_macro")]
        if len(labels) == 2:  # with more labels, F1 is the macro F1
            cards.insert(1, (f"F1 (positive: {labels[1]})", "f1"))
        return cards

    def bootstrap_metric(self, name: str, num_labels: int) -> Callable[[Any, Any], float]:
        return fast_metric(name, num_labels)

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
        preds, abstained = decided
        n = len(names)
        out: dict[str, Any] = {
            f"{split}_{k}": v for k, v in classification_metrics(labels, preds, n).items()
        }
        out.update(policy_metrics(logits, labels, policy, split))
        probs = policy.probabilities(logits)
        for coverage in COVERAGES:
            out[f"{split}_{coverage_key(coverage)}"] = accuracy_at_coverage(probs, labels, coverage)
        if policy.min_confidence is not None:
            answered = ~abstained
            out[f"{split}_coverage"] = float(answered.mean())
            out[f"{split}_answered_accuracy"] = (
                float((preds[answered] == labels[answered]).mean()) if answered.any() else None
            )
        out[f"{split}_per_class"] = per_class_metrics(labels, preds, names)
        counts = class_counts(labels, names)
        out.update(balance_metrics(split, counts, out[f"{split}_per_class"], train_counts))
        return order_metrics(out, split)  # macro F1 and per-class recall first if unbalanced

    def counts(self, labels: np.ndarray, preds: np.ndarray, names: list[str]) -> Counts:
        accuracy = float(self.correct(labels, preds).mean()) if len(labels) else 0.0
        return Counts(
            confusion(labels, preds, len(names)),
            list(names),
            list(names),
            "true",
            "predicted",
            f"acc {accuracy:.3f}",
        )

    def reliability_curves(
        self, logits: np.ndarray, labels: np.ndarray, policy: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
        curves = {"uncalibrated": softmax(logits)}
        if policy.temperature != 1.0:
            curves[f"T={policy.temperature:.2f}"] = policy.probabilities(logits)
        return curves, labels, "reliability"

    def mistakes(
        self, labels: np.ndarray, preds: np.ndarray, probs: np.ndarray, names: list[str]
    ) -> list[Mistake]:
        return [
            Mistake(int(i), names[labels[i]], names[preds[i]], float(probs[i, preds[i]]))
            for i in np.flatnonzero(preds != labels)
        ]
