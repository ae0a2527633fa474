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
from sentiment_hf.tasks.calibration import calibration_metrics, softmax
from sentiment_hf.tasks.label_sets import calibrated, multi_hot

ABSTAIN_LABEL = "uncertain"
ThresholdMetric = Literal["f1", "balanced_accuracy"]
THRESHOLD_METRICS: tuple[str, ...] = ("f1", "balanced_accuracy")
#: Candidate thresholds searched on validation.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
MULTI_LABEL_NO_ABSTAIN = (
    "policy.min_confidence (the abstain band) applies to single-label runs only; a "
    "multi-label run answers every label above its threshold: drop min_confidence"
)


@dataclass(frozen=True)
class Decisions:
    """What a policy decided for each row of calibrated probabilities."""

    best: np.ndarray  #: (n,) index of the label whose probability is the row's score
    given: list[list[int]]  #: per row, the labels given, most probable first (may be empty)
    abstained: np.ndarray  #: (n,) True where the policy declined to answer


def _from_dict(cls: type, raw: dict[str, Any], where: str | Path, ignore: dict[str, Any]) -> Any:
    """``cls(**raw)``; unknown keys are an error naming ``where``. ``ignore``: keys an older
    file may hold at these values (the other task's identity), dropped."""
    raw = {k: v for k, v in raw.items() if not (k in ignore and v == ignore[k])}
    unknown = sorted(set(raw) - {f.name for f in fields(cls)})
    if unknown:
        raise SentimentError(
            f"{where}: unknown key(s) {', '.join(unknown)}; re-create it with "
            "`sentiment calibrate RUN_DIR`"
        )
    return cls(**raw)


@dataclass
class SingleLabelPolicy:
    """How a single-label run's logits become an answer: temperature, binary threshold, abstain
    band. The identity policy (T=1, argmax, never abstain) is the default."""

    temperature: float = 1.0
    threshold: float | None = None
    threshold_metric: str | None = None
    min_confidence: float | None = None
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise SentimentError(f"policy temperature must be > 0, got {self.temperature}")
        for name in ("threshold", "min_confidence"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise SentimentError(f"policy {name} must be between 0 and 1, got {value}")

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: ``softmax(logits / temperature)``."""
        return softmax(np.asarray(logits, dtype=np.float64) / self.temperature)

    def decide(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label index per row, abstained per row) for calibrated ``probs``."""
        if self.threshold is not None and probs.shape[1] == 2:
            preds = (probs[:, 1] >= self.threshold).astype(np.int64)
        else:
            preds = probs.argmax(axis=1)
        chosen = probs[np.arange(len(preds)), preds]
        floor = self.min_confidence
        abstained = chosen < floor if floor is not None else np.zeros(len(preds), dtype=bool)
        return preds, abstained

    def decisions(self, probs: np.ndarray) -> Decisions:
        """One label per row, none where the policy abstains."""
        preds, abstained = self.decide(probs)
        given = [[] if skip else [int(p)] for p, skip in zip(preds, abstained, strict=True)]
        return Decisions(preds, given, abstained)

    def calibration_method(self) -> str | None:
        """How the probabilities are calibrated, as a model card says it (None: they are not)."""
        return (
            None if self.temperature == 1.0 else f"temperature scaling (T = {self.temperature:.2f})"
        )

    def describe(self, num_labels: int) -> str:
        """What a run with this policy answers, as its model card says it."""
        if self.min_confidence is not None:
            return (
                f"`sentiment_hf` answers `uncertain` (abstains) when the chosen label's calibrated "
                f"probability is below {self.min_confidence:g}, and one of its {num_labels} "
                "labels otherwise; `transformers.pipeline` ignores that floor"
            )
        return f"it always answers with one of its {num_labels} labels"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` reads back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str | Path = "policy") -> SingleLabelPolicy:
        """A policy from its dict; unknown keys are an error naming ``where``."""
        return _from_dict(cls, raw, where, {"multi_label": False})


@dataclass
class MultiLabelPolicy:
    """How a multi-label run's logits become labels: per-label calibration (``sigmoid(scales *
    logits + biases)``, identity when unset) and per-label thresholds (0.5 when unset). It never
    abstains: a text may get no label."""

    thresholds: list[float] | None = None
    threshold_metric: str | None = None
    calibration: str | None = None  # none | temperature | platt (multilabel.CALIBRATION_METHODS)
    scales: list[float] | None = None
    biases: list[float] | None = None
    fitted_on: dict[str, Any] = field(default_factory=dict)
    #: never abstains; here so code that shows a policy's abstain band reads one name
    min_confidence: None = None

    def __post_init__(self) -> None:
        if self.min_confidence is not None:
            raise SentimentError(MULTI_LABEL_NO_ABSTAIN)
        if any(not 0.0 <= t <= 1.0 for t in self.thresholds or []):
            raise SentimentError(f"policy thresholds must lie in [0, 1], got {self.thresholds}")
        if any(not s > 0 for s in self.scales or []):
            raise SentimentError(f"policy scales must be > 0, got {self.scales}")

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Per-label calibrated sigmoids."""
        return calibrated(logits, self.scales, self.biases)

    def decide_labels(self, probs: np.ndarray) -> np.ndarray:
        """``(n, k)`` bools, each label at or above its threshold."""
        thresholds = np.asarray(self.thresholds if self.thresholds else [0.5] * probs.shape[1])
        if len(thresholds) != probs.shape[1]:
            raise SentimentError(
                f"the policy has {len(thresholds)} thresholds for {probs.shape[1]} labels; "
                "re-create it with `sentiment calibrate RUN_DIR`"
            )
        return probs >= thresholds

    def decide(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(``(n, k)`` 0/1 per label at or above its threshold, abstained per row: never)."""
        return self.decide_labels(probs).astype(np.int64), np.zeros(len(probs), dtype=bool)

    def decisions(self, probs: np.ndarray) -> Decisions:
        """Every label at or above its threshold, most probable first; the score is the
        highest probability of any label."""
        hot = self.decide_labels(probs)
        order = np.argsort(-probs, axis=1, kind="stable")
        given = [[int(j) for j in row if h[j]] for row, h in zip(order, hot, strict=True)]
        return Decisions(probs.argmax(axis=1), given, np.zeros(len(probs), dtype=bool))

    def calibration_method(self) -> str | None:
        """How the probabilities are calibrated, as a model card says it (None: they are not)."""
        if self.calibration in (None, "none"):
            return None
        return f"per-label {self.calibration} scaling"

    def describe(self, num_labels: int) -> str:
        """What a run with this policy answers, as its model card says it."""
        return (
            "it gives every label whose calibrated probability reaches that label's threshold, "
            "and may give none"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``multi_label: true`` marks the kind) :meth:`from_dict` reads."""
        out = asdict(self)
        out.pop("min_confidence")
        return {"multi_label": True, **out}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str | Path = "policy") -> MultiLabelPolicy:
        """A policy from its dict; unknown keys are an error naming ``where`` (files written
        before the two kinds were told apart also hold the single-label identity)."""
        identity = {"multi_label": True, "temperature": 1.0, "threshold": None}
        return _from_dict(cls, raw, where, identity)


#: Either kind of policy; a run's task says which (:mod:`sentiment_hf.tasks.task`).
DecisionPolicy = SingleLabelPolicy | MultiLabelPolicy


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
    logits: np.ndarray, labels: np.ndarray, policy: SingleLabelPolicy, prefix: str
) -> dict[str, float]:
    """``{prefix}_{nll,brier,ece,...}`` calibrated and ``..._uncalibrated`` for raw logits."""
    out = {}
    for suffix, probs in (("_uncalibrated", softmax(logits)), ("", policy.probabilities(logits))):
        for key, value in calibration_metrics(probs, labels).items():
            if key != "accuracy":
                out[f"{prefix}_{key}{suffix}"] = value
    return out


def tune_thresholds(probs: np.ndarray, labels: np.ndarray, metric: str = "f1") -> list[float]:
    """Per label, the threshold on its probability that maximises ``metric`` (ties: nearest 0.5)."""
    labels = multi_hot(labels)
    return [
        tune_threshold(np.stack([1 - probs[:, j], probs[:, j]], axis=1), labels[:, j], metric)
        for j in range(probs.shape[1])
    ]
