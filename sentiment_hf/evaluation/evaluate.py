"""Evaluate a trained model directory on a split: metrics JSON, PNGs, errors CSV, HTML report."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.evaluation.plots import plot_accuracy_by_length, plot_counts
from sentiment_hf.evaluation.report import Mistake, render_eval_report
from sentiment_hf.fileio import write_json, write_text_atomic
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.longtext import LongTextCounts, describe_long_text
from sentiment_hf.rundir import EVAL_METRICS_FILE, RunDir, open_run
from sentiment_hf.tasks.base import Mistake as TaskMistake
from sentiment_hf.tasks.base import Task
from sentiment_hf.tasks.calibration import (
    BOOTSTRAP_METRICS,
    bootstrap_interval,
    plot_reliability,
    plot_risk_coverage,
)
from sentiment_hf.tasks.metrics import accuracy_by_length
from sentiment_hf.tasks.policy import DecisionPolicy

log = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}
#: How many of the most confident mistakes the HTML report shows (and explains).
REPORT_MISTAKES = 10
#: Word attributions of texts: ``explain(texts)[i]`` is ``[(word, attribution), ...]`` of
#: ``texts[i]``, positive towards the predicted label.
WordAttributor = Callable[[list[str]], list[list[tuple[str, float]]]]


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
    length_path: Path | None = None
    report_path: Path | None = None


def confident_mistakes(
    texts: list[str], wrong: list[TaskMistake], k: int = REPORT_MISTAKES
) -> list[Mistake]:
    """The ``k`` mistakes whose wrong decision was the most confident, as the report shows them."""
    ranked = sorted(wrong, key=lambda m: -m.score)[:k]  # stable: ties keep row order
    return [Mistake(m.index, texts[m.index], m.label, m.predicted, m.score) for m in ranked]


def write_mistakes(path: Path, texts: list[str], wrong: list[TaskMistake], task: Task) -> Path:
    """``{split}_misclassified.csv``: every wrongly decided row, in row order."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "text", *task.mistake_columns])
        for m in wrong:
            writer.writerow(
                [m.index, texts[m.index], m.label, m.predicted, f"{m.score:.4f}", *m.extra]
            )
    return path


def _attributor(predictor: Predictor) -> WordAttributor | None:
    """Integrated gradients on ``predictor``'s own model (loaded once for eval and explaining);
    None, with a warning, where explanations cannot work (e.g. no fast tokenizer)."""
    from sentiment_hf.inference.explain import Explainer

    try:
        return Explainer(predictor).word_weights
    except SentimentError as exc:
        log.warning("mistakes not explained: %s", exc)
        return None


def evaluate_model(
    model_dir: str | Path | RunDir,
    split: str = "test",
    data: str | None = None,
    output_dir: str | Path | None = None,
    batch_size: int = 64,
    backend: str = "torch",
    explain: WordAttributor | bool | None = None,
) -> EvalReport:
    """Evaluate ``model_dir`` on ``split`` of its recipe's data (or ``data``) and write reports.

    ``data`` is a folder (only ``{split}`` file is needed) or one file, evaluated whole.

    Files go to ``output_dir`` (default ``MODEL_DIR/eval``): ``{split}_metrics.json``, the
    confusion (per-label counts for a multi-label run), reliability, risk-coverage
    (single-label) and accuracy-by-length PNGs, ``{split}_misclassified.csv`` and
    ``{split}_report.html`` (all of it on one page). With ``explain``, the report highlights the
    words of its most confident mistakes: ``True`` explains them with integrated gradients on
    the model eval already loaded (torch backend, single-label; skipped with a warning where
    that cannot work), a callable is used as the attributor.
    """
    run = open_run(model_dir)
    split = SPLIT_ALIASES.get(split, split)
    if split not in ("train", "validation", "test"):
        raise SentimentError(f"unknown split {split!r}; use train, validation or test")
    task = run.task
    predictor = Predictor(run, backend=backend, batch_size=batch_size, progress=f"eval {split}")
    scored = score_split(run, predictor, split, data)
    metrics = scored.metrics
    out = Path(output_dir) if output_dir else run.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = write_json(
        out / EVAL_METRICS_FILE.format(split=split),
        {**metrics, "data_source": scored.source, **task.report_fields()},
        sort_keys=False,  # the leading metrics first (imbalance.order_metrics)
    )
    names, texts = predictor.labels, scored.texts
    title = f"{run.path.name}: {split}"
    images = eval_plots(out, split, title, task, scored, predictor.policy, names)
    wrong = task.mistakes(scored.labels, scored.preds, scored.probs, names)
    errors_path = write_mistakes(out / f"{split}_misclassified.csv", texts, wrong, task)
    mistakes = confident_mistakes(texts, wrong)
    page = render_eval_report(
        split,
        metrics,
        names,
        images,
        mistakes,
        scored.by_length,
        _attributions(explain, predictor, mistakes),
        title=run.path.name,
        policy=predictor.policy.to_dict(),
        details={
            "data": scored.source,
            "backend": backend,
            "max_length": predictor.max_length,
            "long_text": describe_long_text(
                predictor.long_text, scored.counts, rule=run.document_rule is not None
            ),
        },
        task=task,
    )
    return EvalReport(
        split=split,
        metrics=metrics,
        metrics_path=metrics_path,
        confusion_path=images["confusion"],
        errors_path=errors_path,
        reliability_path=images["reliability"],
        risk_coverage_path=images.get("risk_coverage"),
        length_path=images["length"],
        report_path=write_text_atomic(out / f"{split}_report.html", page),
    )


@dataclass
class Scored:
    """A split scored by a run's predictor under its policy: the rows, what was decided, and
    every figure of ``{split}_metrics.json`` but the data source."""

    texts: list[str]
    labels: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    preds: np.ndarray
    metrics: dict[str, Any]
    by_length: list[dict[str, Any]]
    counts: LongTextCounts
    source: str


def score_split(run: RunDir, predictor: Predictor, split: str, data: str | None) -> Scored:
    """Predict ``split`` of the run's data (or ``data``), decide under the run's policy and
    measure: the task's figures, long-text counts, bootstrap intervals, accuracy by length."""
    task, names, policy = run.task, predictor.labels, predictor.policy
    # ``--data FILE`` is one file evaluated whole; ``--data DIR`` needs the split's own file
    loaded = run.load_splits((split,), data, whole_file=True)
    texts = list(loaded.splits[split]["text"])
    labels = task.encode(loaded.splits[split]["label"])
    counts = LongTextCounts()
    logits = predictor.predict_logits(texts, counts=counts, strict=False)
    probs = policy.probabilities(logits)
    decided = policy.decide(probs)
    preds = decided[0]
    train_counts = run.manifest.get("class_counts", {}).get("train")
    metrics = task.evaluation_metrics(split, logits, labels, decided, policy, names, train_counts)
    metrics[f"{split}_samples"] = len(texts)
    metrics.update(counts.to_metrics(split))
    metrics.update(bootstrap_metrics(split, labels, preds, task, len(names)))
    tokens = predictor.tokenizer(texts, add_special_tokens=False)["input_ids"]
    correct = task.correct(labels, preds)
    by_length = accuracy_by_length(np.array([len(t) for t in tokens]), correct)
    metrics[f"{split}_accuracy_by_length"] = by_length
    return Scored(texts, labels, logits, probs, preds, metrics, by_length, counts, loaded.source)


def _attributions(
    explain: WordAttributor | bool | None, predictor: Predictor, mistakes: list[Mistake]
) -> list[list[tuple[str, float]]] | None:
    """Word attributions of ``mistakes`` (None: not asked for, or nothing to explain)."""
    if explain is True:  # integrated gradients, where the task's answers have one target
        explain = _attributor(predictor) if predictor.run.task.explainable else None
    attributions = explain([m.text for m in mistakes]) if explain and mistakes else None
    if attributions is not None and len(attributions) != len(mistakes):
        raise SentimentError(
            f"the explainer returned {len(attributions)} attribution lists for "
            f"{len(mistakes)} texts; it must return one per text"
        )
    return attributions


def eval_plots(
    out: Path,
    split: str,
    title: str,
    task: Task,
    scored: Scored,
    policy: DecisionPolicy,
    names: list[str],
) -> dict[str, Path]:
    """The counts heat map, the reliability diagram, accuracy by length and (single-label)
    the risk-coverage curve, keyed as the report places them."""
    labels, preds = scored.labels, scored.preds
    counts = task.counts(labels, preds, names)
    curves, curve_labels, caption = task.reliability_curves(scored.logits, labels, policy)
    images = {
        "confusion": plot_counts(
            counts, out / f"{split}_confusion.png", f"{title} ({counts.caption})"
        ),
        "reliability": plot_reliability(
            curves, curve_labels, out / f"{split}_reliability.png", f"{title}: {caption}"
        ),
        "length": plot_accuracy_by_length(
            scored.by_length,
            scored.metrics[f"{split}_accuracy"],
            out / f"{split}_accuracy_by_length.png",
            f"{title}: {task.accuracy_name} by length",
        ),
    }
    if task.selective:
        images["risk_coverage"] = plot_risk_coverage(
            scored.probs, labels, out / f"{split}_risk_coverage.png", f"{title}: risk-coverage"
        )
    return images


def bootstrap_metrics(
    split: str, labels: np.ndarray, preds: np.ndarray, task: Task, num_labels: int
) -> dict[str, list[float]]:
    """95 % percentile-bootstrap intervals of :data:`BOOTSTRAP_METRICS` over the rows."""
    out = {}
    for name in BOOTSTRAP_METRICS:
        metric = task.bootstrap_metric(name, num_labels)
        lo, hi = bootstrap_interval(labels, preds, metric, n_resamples=BOOTSTRAP_RESAMPLES)
        out[f"{split}_{name}_ci95"] = [lo, hi]
    return out
