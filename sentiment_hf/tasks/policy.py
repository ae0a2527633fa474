"""The decision policy a run carries: calibration temperature, threshold and abstain band.

Stored as ``policy.json`` in the run directory (by ``sentiment train`` and ``sentiment
calibrate``) and applied by :class:`~sentiment_hf.inference.predictor.Predictor` on every backend,
so eval,
predict, the server and the page answer the same way::

    probabilities = softmax(logits / temperature)
    binary with a threshold:  label 1 when p(label 1) >= threshold, else label 0
    otherwise:                the most probable label
    min_confidence:           answer ABSTAIN_LABEL when the chosen label's probability is lower

Multi-label runs (``multi_label``) use per-label sigmoids instead (``multilabel.py``)::

    probabilities = sigmoid(scales * logits + biases)     (per label; identity when unset)
    labels        = every label whose probability >= its entry of ``thresholds`` (default 0.5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.tasks.calibration import softmax

ABSTAIN_LABEL = "uncertain"
ThresholdMetric = Literal["f1", "balanced_accuracy"]
THRESHOLD_METRICS: tuple[str, ...] = ("f1", "balanced_accuracy")
#: Candidate thresholds searched on validation.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


@dataclass
class DecisionPolicy:
    """How logits become an answer. The identity policy (T=1, argmax, never abstain) is default."""

    temperature: float = 1.0
    threshold: float | None = None
    threshold_metric: str | None = None
    min_confidence: float | None = None
    fitted_on: dict[str, Any] = field(default_factory=dict)
    # multi-label runs only (left out of single-label policy files)
    multi_label: bool = False
    thresholds: list[float] | None = None
    calibration: str | None = None  # none | temperature | platt (multilabel.CALIBRATION_METHODS)
    scales: list[float] | None = None
    biases: list[float] | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise SentimentError(f"policy temperature must be > 0, got {self.temperature}")
        for name in ("threshold", "min_confidence"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise SentimentError(f"policy {name} must be between 0 and 1, got {value}")
        if any(not 0.0 <= t <= 1.0 for t in self.thresholds or []):
            raise SentimentError(f"policy thresholds must lie in [0, 1], got {self.thresholds}")
        if any(not s > 0 for s in self.scales or []):
            raise SentimentError(f"policy scales must be > 0, got {self.scales}")

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``logits`` (per-label sigmoids when multi-label)."""
        if self.multi_label:
            from sentiment_hf.tasks.multilabel import calibrated

            return calibrated(logits, self.scales, self.biases)
        return softmax(np.asarray(logits, dtype=np.float64) / self.temperature)

    def decide_labels(self, probs: np.ndarray) -> np.ndarray:
        """Multi-label decisions: ``(n, k)`` bools, each label at or above its threshold."""
        thresholds = np.asarray(self.thresholds if self.thresholds else [0.5] * probs.shape[1])
        if len(thresholds) != probs.shape[1]:
            raise SentimentError(
                f"the policy has {len(thresholds)} thresholds for {probs.shape[1]} labels; "
                "re-create it with `sentiment calibrate RUN_DIR`"
            )
        return probs >= thresholds

    def decide(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label index per row, abstained per row) for calibrated ``probs``.

        Multi-label: the most probable label and never abstaining (see :meth:`decide_labels`).
        """
        if self.multi_label:
            return probs.argmax(axis=1), np.zeros(len(probs), dtype=bool)
        if self.threshold is not None and probs.shape[1] == 2:
            preds = (probs[:, 1] >= self.threshold).astype(np.int64)
        else:
            preds = probs.argmax(axis=1)
        chosen = probs[np.arange(len(preds)), preds]
        floor = self.min_confidence
        abstained = chosen < floor if floor is not None else np.zeros(len(preds), dtype=bool)
        return preds, abstained

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` reads back."""
        out = asdict(self)
        if not self.multi_label:
            for key in ("multi_label", "thresholds", "calibration", "scales", "biases"):
                out.pop(key)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str | Path = "policy") -> DecisionPolicy:
        """A policy from its dict; unknown keys are an error naming ``where``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SentimentError(
                f"{where}: unknown key(s) {', '.join(unknown)}; re-create it with "
                "`sentiment calibrate RUN_DIR`"
            )
        return cls(**raw)


def _metric(name: str, labels: np.ndarray, preds: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    if name == "f1":
        return float(f1_score(labels, preds, pos_label=1, zero_division=0))
    return float(balanced_accuracy_score(labels, preds))


def check_threshold_metric(metric: str) -> str:
    """``metric`` if it is one of :data:`THRESHOLD_METRICS`, else a clear error."""
    if metric not in THRESHOLD_METRICS:
        raise SentimentError(
            f"unknown threshold metric {metric!r}; choose {', '.join(THRESHOLD_METRICS)}"
        )
    return metric


def tune_threshold(probs: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """The binary threshold on p(label 1) that maximises ``metric`` (ties: closest to 0.5)."""
    check_threshold_metric(metric)
    if probs.shape[1] != 2:
        raise SentimentError(
            "a tuned threshold needs exactly two labels; with more the policy takes the most "
            "probable label (leave threshold_metric unset)"
        )
    labels = np.asarray(labels)
    scores = [_metric(metric, labels, (probs[:, 1] >= t).astype(int)) for t in THRESHOLD_GRID]
    best = max(scores)
    ties = [t for t, s in zip(THRESHOLD_GRID, scores, strict=True) if s == best]
    return float(min(ties, key=lambda t: abs(t - 0.5)))


def policy_metrics(
    logits: np.ndarray, labels: np.ndarray, policy: DecisionPolicy, prefix: str
) -> dict[str, float]:
    """``{prefix}_{nll,brier,ece,...}`` calibrated and ``..._uncalibrated`` for raw logits."""
    from sentiment_hf.tasks.calibration import calibration_metrics

    out = {}
    for suffix, probs in (("_uncalibrated", softmax(logits)), ("", policy.probabilities(logits))):
        for key, value in calibration_metrics(probs, labels).items():
            if key != "accuracy":
                out[f"{prefix}_{key}{suffix}"] = value
    return out
