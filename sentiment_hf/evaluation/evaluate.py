"""Evaluate a trained model directory on a split: metrics JSON, PNGs, errors CSV, HTML report."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.data.load import load_run_data
from sentiment_hf.errors import SentimentError
from sentiment_hf.evaluation.plots import plot_accuracy_by_length, plot_confusion
from sentiment_hf.evaluation.report import Mistake, render_eval_report
from sentiment_hf.fileio import write_json, write_text_atomic
from sentiment_hf.imbalance import balance_metrics, class_counts, order_metrics
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.longtext import LongTextCounts, describe_long_text
from sentiment_hf.rundir import EVAL_METRICS_FILE, RunDir, open_run
from sentiment_hf.tasks.calibration import (
    BOOTSTRAP_METRICS,
    COVERAGES,
    accuracy_at_coverage,
    bootstrap_interval,
    coverage_key,
    plot_reliability,
    plot_risk_coverage,
    softmax,
)
from sentiment_hf.tasks.metrics import (
    accuracy_by_length,
    classification_metrics,
    confusion,
    fast_metric,
    per_class_metrics,
)
from sentiment_hf.tasks.policy import DecisionPolicy, policy_metrics

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
    texts: list[str],
    labels: np.ndarray,
    preds: np.ndarray,
    probs: np.ndarray,
    names: list[str],
    k: int = REPORT_MISTAKES,
) -> list[Mistake]:
    """The ``k`` misclassified inputs whose wrong label got the highest probability."""
    wrong = np.flatnonzero(preds != labels)
    chosen = probs[wrong, preds[wrong]]
    order = wrong[np.argsort(-chosen, kind="stable")][:k]
    return [
        Mistake(int(i), texts[i], names[labels[i]], names[preds[i]], float(probs[i, preds[i]]))
        for i in order
    ]


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
    confusion, reliability, risk-coverage and accuracy-by-length PNGs,
    ``{split}_misclassified.csv`` and ``{split}_report.html`` (all of it on one page). With
    ``explain``, the report highlights the words of its most confident mistakes: ``True``
    explains them with integrated gradients on the model eval already loaded (torch backend;
    skipped with a warning where that cannot work, e.g. no fast tokenizer), a callable is used
    as the attributor.
    """
    run = open_run(model_dir)
    split = SPLIT_ALIASES.get(split, split)
    if split not in ("train", "validation", "test"):
        raise SentimentError(f"unknown split {split!r}; use train, validation or test")
    if run.multi_label:  # per-label figures; mistakes are not explained
        from sentiment_hf.evaluation.multilabel import evaluate_multilabel

        return evaluate_multilabel(run, split, data, output_dir, batch_size, backend)
    predictor = Predictor(run, backend=backend, batch_size=batch_size, progress=f"eval {split}")
    # ``--data FILE`` is one file evaluated whole; ``--data DIR`` needs the split's own file
    loaded = load_run_data(run, (split,), data, whole_file=True)
    dataset = loaded.splits[split]
    texts, labels = dataset["text"], np.asarray(dataset["label"])
    counts = LongTextCounts()
    logits = predictor.predict_logits(texts, counts=counts, strict=False)
    probs = predictor.policy.probabilities(logits)
    preds, abstained = predictor.policy.decide(probs)
    n = len(predictor.labels)
    metrics: dict[str, Any] = {
        f"{split}_{k}": v for k, v in classification_metrics(labels, preds, n).items()
    }
    metrics[f"{split}_samples"] = len(texts)
    metrics.update(counts.to_metrics(split))
    metrics.update(trust_metrics(split, logits, labels, preds, abstained, predictor.policy, n))
    metrics[f"{split}_per_class"] = per_class_metrics(labels, preds, predictor.labels)
    metrics.update(
        balance_metrics(
            split,
            class_counts(labels, predictor.labels),
            metrics[f"{split}_per_class"],
            run.manifest.get("class_counts", {}).get("train"),
        )
    )
    tokens = predictor.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    by_length = accuracy_by_length(np.array([len(t) for t in tokens]), preds == labels)
    metrics[f"{split}_accuracy_by_length"] = by_length
    metrics = order_metrics(metrics, split)  # macro F1 and per-class recall first if unbalanced
    out = Path(output_dir) if output_dir else run.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = write_json(
        out / EVAL_METRICS_FILE.format(split=split),
        {**metrics, "data_source": loaded.source},
        sort_keys=False,  # the leading metrics first (imbalance.order_metrics)
    )
    title = f"{run.path.name}: {split}"
    confusion_path = plot_confusion(
        confusion(labels, preds, n),
        predictor.labels,
        out / f"{split}_confusion.png",
        f"{title} (acc {metrics[f'{split}_accuracy']:.3f})",
    )
    curves = {"uncalibrated": softmax(logits)}
    if predictor.policy.temperature != 1.0:
        curves[f"T={predictor.policy.temperature:.2f}"] = probs
    reliability_path = plot_reliability(
        curves, labels, out / f"{split}_reliability.png", f"{title}: reliability"
    )
    risk_path = plot_risk_coverage(
        probs, labels, out / f"{split}_risk_coverage.png", f"{title}: risk-coverage"
    )
    length_path = plot_accuracy_by_length(
        by_length,
        metrics[f"{split}_accuracy"],
        out / f"{split}_accuracy_by_length.png",
        f"{title}: accuracy by length",
    )
    errors_path = out / f"{split}_misclassified.csv"
    with open(errors_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "text", "label", "predicted", "score"])
        for i in np.flatnonzero(preds != labels):
            writer.writerow(
                [
                    int(i),
                    texts[i],
                    predictor.labels[labels[i]],
                    predictor.labels[preds[i]],
                    f"{probs[i, preds[i]]:.4f}",
                ]
            )
    mistakes = confident_mistakes(texts, labels, preds, probs, predictor.labels)
    if explain is True:
        explain = _attributor(predictor)
    attributions = explain([m.text for m in mistakes]) if explain and mistakes else None
    if attributions is not None and len(attributions) != len(mistakes):
        raise SentimentError(
            f"the explainer returned {len(attributions)} attribution lists for "
            f"{len(mistakes)} texts; it must return one per text"
        )
    page = render_eval_report(
        split,
        metrics,
        predictor.labels,
        {
            "confusion": confusion_path,
            "reliability": reliability_path,
            "risk_coverage": risk_path,
            "length": length_path,
        },
        mistakes,
        by_length,
        attributions,
        title=run.path.name,
        policy=predictor.policy.to_dict(),
        details={
            "data": loaded.source,
            "backend": backend,
            "max_length": predictor.max_length,
            "long_text": describe_long_text(predictor.long_text, counts),
        },
    )
    report_path = write_text_atomic(out / f"{split}_report.html", page)
    return EvalReport(
        split=split,
        metrics=metrics,
        metrics_path=metrics_path,
        confusion_path=confusion_path,
        errors_path=errors_path,
        reliability_path=reliability_path,
        risk_coverage_path=risk_path,
        length_path=length_path,
        report_path=report_path,
    )


def trust_metrics(
    split: str,
    logits: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    abstained: np.ndarray,
    policy: DecisionPolicy,
    num_labels: int,
) -> dict[str, Any]:
    """Calibration (before/after), selective accuracy, abstention and bootstrap intervals."""
    out: dict[str, Any] = policy_metrics(logits, labels, policy, split)
    probs = policy.probabilities(logits)
    for coverage in COVERAGES:
        key = f"{split}_{coverage_key(coverage)}"
        out[key] = accuracy_at_coverage(probs, labels, coverage)
    if policy.min_confidence is not None:
        answered = ~abstained
        out[f"{split}_coverage"] = float(answered.mean())
        out[f"{split}_answered_accuracy"] = (
            float((preds[answered] == labels[answered]).mean()) if answered.any() else None
        )
    for name in BOOTSTRAP_METRICS:
        metric = fast_metric(name, num_labels)
        lo, hi = bootstrap_interval(labels, preds, metric, n_resamples=BOOTSTRAP_RESAMPLES)
        out[f"{split}_{name}_ci95"] = [lo, hi]
    return out
