"""What a task is (:class:`Task`) and the values its methods return; the two tasks live in
:mod:`~sentiment_hf.tasks.single_label` and :mod:`~sentiment_hf.tasks.multi_label`, and
:mod:`~sentiment_hf.tasks.task` picks a run's."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.tasks.policy import DecisionPolicy, MultiLabelPolicy, SingleLabelPolicy

#: The splits a policy is fitted on (the first) and measured on (both), with metric prefixes.
POLICY_SPLITS = (("validation", "eval"), ("test", "test"))


@dataclass
class FittedPolicy:
    """A policy fitted on validation, its measures per split, and the reliability curves
    (name -> calibrated probabilities, with the labels they are scored against)."""

    policy: DecisionPolicy
    metrics: dict[str, float]
    curves: dict[str, np.ndarray]
    curve_labels: np.ndarray
    curve_title: str


@dataclass(frozen=True)
class Counts:
    """A table of counts the evaluation draws as a heat map (a confusion matrix, or each
    label's 2x2 counts), with its row / column names and axis titles."""

    matrix: np.ndarray
    rows: list[str]
    columns: list[str]
    row_title: str
    column_title: str
    caption: str


@dataclass(frozen=True)
class Mistake:
    """A wrongly decided text of an evaluated split: its index, the true and the decided label
    names, the probability behind its most confident wrong decision, and extra CSV cells."""

    index: int
    label: str
    predicted: str
    score: float
    extra: tuple[str, ...] = ()


class Task(ABC):
    """What differs between single- and multi-label classification."""

    #: "single-label" or "multi-label", as messages name it
    name: ClassVar[str]
    #: ``config.json``'s ``problem_type`` (None: transformers' single-label default)
    problem_type: ClassVar[str | None]
    #: reported as is (``/ready``, ``eval_metrics.json``); never branched on outside this module
    multi_label: ClassVar[bool]
    #: the kind of decision policy (:mod:`sentiment_hf.tasks.policy`) a run of this task holds
    policy_class: ClassVar[type[SingleLabelPolicy] | type[MultiLabelPolicy]]
    #: result columns of a prediction file, after the text
    output_columns: ClassVar[tuple[str, ...]]
    #: what "accuracy" measures, as a plot names it
    accuracy_name: ClassVar[str]
    #: the template of its parts of the evaluation report (decision and calibration notes)
    report_parts: ClassVar[str]
    #: integrated gradients towards the decided label describe its answers (softmax target)
    explainable: ClassVar[bool]
    #: one confidence per answer, so answers can be ranked (risk-coverage, abstaining)
    selective: ClassVar[bool]
    #: the columns of ``{split}_misclassified.csv`` after the text (see :class:`Mistake`)
    mistake_columns: ClassVar[tuple[str, ...]]

    def model_config(self) -> dict[str, Any]:
        """Config fields the model is built with (``problem_type`` picks transformers' loss)."""
        return {"problem_type": self.problem_type} if self.problem_type else {}

    @abstractmethod
    def kind(self, labels: list[str]) -> str:
        """How a model card names the classifier."""

    #: what a report file records of the task: the same ``problem_type`` field, where set
    report_fields = model_config

    def check_same(self, data: Task, source: str) -> None:
        """A clear error when ``source`` holds data of the other task."""
        if data is not self:
            raise SentimentError(
                f"the run is {self.name} but {source!r} holds {data.name} data; evaluate it on "
                "data laid out like the data it was trained on"
            )

    @abstractmethod
    def encode(self, labels: Any) -> np.ndarray:
        """A split's ``label`` column as an array: class indices, or ``(n, k)`` multi-hot."""

    def compute_metrics(self, num_labels: int) -> Callable[[Any], dict[str, float]]:
        """The Trainer's ``compute_metrics``: :meth:`score_logits` of its predictions."""

        def compute_metrics(eval_pred: Any) -> dict[str, float]:
            logits = eval_pred.predictions
            if isinstance(logits, tuple):  # a model that returns more than its logits
                logits = logits[0]
            return self.score_logits(np.asarray(logits), eval_pred.label_ids, num_labels)

        return compute_metrics

    @abstractmethod
    def score_logits(
        self, logits: np.ndarray, labels: np.ndarray, num_labels: int
    ) -> dict[str, float]:
        """Metrics of raw logits during training (no decision policy yet)."""

    @abstractmethod
    def check_class_weights(self, weights: Any) -> None:
        """Refuse ``training.class_weights`` where the task's loss cannot weigh classes."""

    def identity_policy(self) -> DecisionPolicy:
        """The policy of a run that has none stored."""
        return self.policy_class()

    def read_policy(self, raw: dict[str, Any], where: str | Path) -> DecisionPolicy:
        """This task's policy from a ``policy.json`` dict."""
        return self.policy_class.from_dict(raw, where)

    @abstractmethod
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
        """Fit the policy on ``logits["validation"]`` (encoded ``labels``) and measure it on
        every split of :data:`POLICY_SPLITS`."""

    @abstractmethod
    def correct(self, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
        """Per row, whether the decision is right (the whole label set, for multi-label)."""

    @abstractmethod
    def headline(self, labels: list[str]) -> list[tuple[str, str]]:
        """The evaluation report's headline cards: (name, metric key without the split)."""

    @abstractmethod
    def bootstrap_metric(self, name: str, num_labels: int) -> Callable[[Any, Any], float]:
        """A fast ``metric(labels, preds)`` of a :data:`BOOTSTRAP_METRICS` name."""

    @abstractmethod
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
        """Every figure of an evaluation of ``split`` except the long-text counts, the
        bootstrap intervals and accuracy by length, keyed ``{split}_...``."""

    @abstractmethod
    def counts(self, labels: np.ndarray, preds: np.ndarray, names: list[str]) -> Counts:
        """The count table the report draws."""

    @abstractmethod
    def reliability_curves(
        self, logits: np.ndarray, labels: np.ndarray, policy: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
        """(name -> probabilities, the labels they are scored against, a caption) of an
        evaluation's reliability diagram."""

    @abstractmethod
    def mistakes(
        self, labels: np.ndarray, preds: np.ndarray, probs: np.ndarray, names: list[str]
    ) -> list[Mistake]:
        """Every wrongly decided row, in row order."""


def fitted_on(labels: np.ndarray, source: str, objective: str) -> dict[str, Any]:
    """``policy.json``'s record of what a policy was fitted on."""
    return {"split": "validation", "samples": len(labels), "source": source, "objective": objective}
