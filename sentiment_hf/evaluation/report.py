"""The evaluation report a person reads: one self-contained HTML file from plain data.

:func:`render_eval_report` takes what ``evaluate_model`` computed (the metrics dict as it goes
to ``{split}_metrics.json``, label names, the PNGs, the most confident mistakes, the
accuracy-by-length table and optional word attributions) and returns a page with inline CSS,
the images as base64 ``data:`` URIs, no script and no external reference, readable on a laptop
and on a phone. Every piece of text is escaped: review texts and label names are user data.
The page is the template ``templates/eval_report.html.j2``, rendered by :mod:`sentiment_hf.render`;
this module chooses what it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sentiment_hf.imbalance import UNBALANCED_RATIO
from sentiment_hf.render import render
from sentiment_hf.tasks.base import Task
from sentiment_hf.tasks.calibration import COVERAGES, coverage_key
from sentiment_hf.tasks.task import SINGLE_LABEL

#: Image keys the report places, in page order: confusion matrix, reliability diagram,
#: risk-coverage curve, accuracy-by-length bars.
IMAGE_KEYS = ("confusion", "reliability", "risk_coverage", "length")
#: Calibration measures of the before/after table (metrics key suffix, row name).
CALIBRATION_ROWS = (
    ("nll", "NLL"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("mean_confidence", "mean confidence"),
)
#: Highest background alpha of a highlighted word (the word with the largest |attribution|).
MAX_ALPHA = 0.7
TOWARDS_RGB = "46, 160, 67"  # green: pushes towards the predicted label
AGAINST_RGB = "207, 34, 46"  # red: pushes against it


@dataclass(frozen=True)
class Mistake:
    """One misclassified input: its index in the split, text, true and predicted label names,
    and the (calibrated) probability of the predicted, wrong label."""

    index: int
    text: str
    label: str
    predicted: str
    probability: float


class Card(NamedTuple):
    """A headline figure: its name, value and 95 % interval (None when not measured)."""

    name: str
    value: Any
    interval: Sequence[float] | None


class Word(NamedTuple):
    """A highlighted word: its text, background colour and alpha, and its attribution."""

    text: str
    rgb: str
    alpha: str
    score: str


class ShownMistake(NamedTuple):
    """A mistake as the page lists it: with its highlighted words when it was explained."""

    mistake: Mistake
    words: list[Word] | None


def highlight(words: Sequence[tuple[str, float]]) -> list[Word]:
    """Words coloured green towards the predicted label, red against it; alpha ∝ |score|."""
    peak = max((abs(score) for _, score in words), default=0.0) or 1.0
    return [
        Word(
            text=word,
            rgb=TOWARDS_RGB if score >= 0 else AGAINST_RGB,
            alpha=f"{MAX_ALPHA * abs(score) / peak:.2f}",
            score=f"{score:+.3f}",
        )
        for word, score in words
    ]


def _split_metrics(metrics: dict[str, Any], split: str) -> dict[str, Any]:
    """``metrics`` without the ``{split}_`` prefix; when the classes are unbalanced, each class's
    recall also as ``recall[<label>]`` (a headline card)."""
    m = {key.removeprefix(f"{split}_"): value for key, value in metrics.items()}
    if m.get("unbalanced"):
        recalls = m.get("recall_per_class") or {}
        m.update({f"recall[{name}]": value for name, value in recalls.items()})
    return m


def _headline(m: dict[str, Any], labels: Sequence[str], task: Task) -> list[Card]:
    """The headline cards: the task's (accuracy and F1); macro F1 and each class's recall first
    when the classes are unbalanced (sentiment_hf.imbalance)."""
    headline = task.headline(list(labels))
    if m.get("unbalanced"):
        recalls = m.get("recall_per_class") or {}
        headline = [
            ("Macro F1", "f1_macro"),
            *[(f"Recall: {name}", f"recall[{name}]") for name in recalls],
            *[row for row in headline if row[1] != "f1_macro"],
        ]
    return [Card(name, m.get(key), m.get(f"{key}_ci95")) for name, key in headline]


def _imbalance_ratios(m: dict[str, Any], split: str) -> list[tuple[str, float | None]] | None:
    """(split, largest / smallest class share; None: a class is missing) of train and ``split``;
    None when the classes are balanced."""
    if not m.get("unbalanced"):
        return None
    keys = (("train", "train_imbalance_ratio"), (split, "imbalance_ratio"))
    return [(name, m[key]) for name, key in keys if key in m]


def render_eval_report(
    split: str,
    metrics: dict[str, Any],
    labels: Sequence[str],
    images: dict[str, str | Path | bytes | None],
    mistakes: Sequence[Mistake],
    length_table: Sequence[dict[str, Any]],
    attributions: Sequence[Sequence[tuple[str, float]]] | None = None,
    title: str = "evaluation",
    policy: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    length_unit: str = "tokens",
    task: Task = SINGLE_LABEL,
) -> str:
    """The evaluation report of ``split`` as one self-contained HTML page.

    ``metrics`` uses the keys of ``{split}_metrics.json`` (``{split}_accuracy``,
    ``{split}_accuracy_ci95``, ``{split}_per_class``, ...; a missing one shows as n/a).
    ``images`` maps :data:`IMAGE_KEYS` to PNG paths or bytes. ``length_table`` rows are
    ``{"min", "max", "samples", "accuracy"}``. ``attributions[i]``, when given, is the
    ``(word, attribution)`` list of ``mistakes[i]``; positive pushes towards the predicted label.
    ``policy`` is the decision policy's dict; ``details`` are extra header facts.
    ``task`` picks the headline cards and the task's parts of the page (for multi-label:
    per-label thresholds and calibration, subset accuracy, ``per_class`` holds labels).
    """
    if attributions is not None and len(attributions) != len(mistakes):
        raise ValueError(
            f"{len(attributions)} attribution lists for {len(mistakes)} mistakes; "
            "give one per mistake"
        )
    m = _split_metrics(metrics, split)
    policy = policy or {}
    facts = {"split": split, "samples": m.get("samples"), **(details or {})}
    thresholds = policy.get("thresholds") or [0.5] * len(labels)
    shown = [
        ShownMistake(mistake, highlight(attributions[i]) if attributions is not None else None)
        for i, mistake in enumerate(mistakes)
    ]
    return render(
        "eval_report.html.j2",
        title=title,
        split=split,
        labels=labels,
        report_parts=task.report_parts,
        m=m,
        policy=policy,
        facts={name: value for name, value in facts.items() if value is not None},
        cards=_headline(m, labels, task),
        imbalance_ratios=_imbalance_ratios(m, split),
        unbalanced_ratio=UNBALANCED_RATIO,
        thresholds=list(zip(labels, thresholds, strict=False)),
        per_class=m.get("per_class") or {},
        temperature=policy.get("temperature", 1.0),
        calibration_method=policy.get("calibration") or "none",
        calibration_rows=CALIBRATION_ROWS,
        coverage_rows=[(round(c * 100), m.get(coverage_key(c))) for c in COVERAGES],
        length_unit=length_unit,
        length_table=length_table,
        images=images,
        mistakes=shown,
        explained=attributions is not None,
        towards_rgb=TOWARDS_RGB,
        against_rgb=AGAINST_RGB,
        max_alpha=MAX_ALPHA,
    )
