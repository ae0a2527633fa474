"""Fit a run's decision policy on its validation split and store it (``sentiment calibrate``,
and the end of ``sentiment train``): the workflow around the task's policy fitting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiment_hf.fileio import write_json
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.rundir import METRICS_FILE, POLICY_FILE, RELIABILITY_FILE, open_run
from sentiment_hf.tasks.base import POLICY_SPLITS
from sentiment_hf.tasks.calibration import plot_reliability
from sentiment_hf.tasks.policy import DecisionPolicy

if TYPE_CHECKING:
    from sentiment_hf.data.load import SentimentData


@dataclass
class PolicyReport:
    """What :func:`fit_policy` fitted, the measures before/after per split and the files written."""

    policy: DecisionPolicy
    metrics: dict[str, float]
    policy_path: Path
    reliability_path: Path


def store_policy(run: Any, policy: DecisionPolicy, metrics: dict[str, Any], own: bool) -> Path:
    """Write ``policy.json``; ``own`` (fitted and measured on the run's own rows): add
    ``metrics`` to ``metrics.json``, else remove the replaced policy's measures from it (other
    data's figures never sit beside training's). Returns the policy file."""
    kept = run.metrics if own else {k: v for k, v in run.metrics.items() if k not in metrics}
    path = write_json(run.file(POLICY_FILE), policy.to_dict())
    write_json(run.file(METRICS_FILE), {**kept, **metrics} if own else kept)
    return path


def fit_policy(
    model_dir: Any,
    threshold_metric: str | None = None,
    min_confidence: float | None = None,
    data: str | None = None,
    batch_size: int = 64,
    objective: str | None = None,
    *,
    model: Any = None,
    loaded: SentimentData | None = None,
) -> PolicyReport:
    """Fit the run's decision policy (its task's: a temperature and a threshold, or per-label
    calibration and thresholds) on its validation split and store it.

    ``threshold_metric``, ``min_confidence`` and ``objective`` left at None take the run's
    recipe (its ``policy:`` section; the schema's defaults for a run without one), so a refit
    decides as training did unless told otherwise. On the run's own data the validation and
    test rows are those training scored (the recipe's ``data.max_*_samples``), and their
    calibration measures (before and after) join ``metrics.json`` beside training's. ``data``
    (other data) must hold its own validation and test files, never cut out of train; its
    measures are returned but kept out of ``metrics.json``, whose measures of the replaced
    policy are removed. Writes ``policy.json`` (``fitted_on`` names the source and rows) and
    ``reliability.png``. Predictions of every backend follow the stored policy from then on.

    ``model`` and ``loaded`` (training passes what it holds: the torch model and the run's own
    data, cut as :meth:`~sentiment_hf.rundir.RunDir.load_splits` cuts it) spare reloading them.
    """
    run = open_run(model_dir)
    recipe = run.policy_config
    own = data is None
    if loaded is None:
        loaded = run.load_splits(("validation", "test"), data, limits=own)
    splits = loaded.splits
    predictor = Predictor(run, batch_size=batch_size, progress="calibrate", model=model)
    names = [name for name, _ in POLICY_SPLITS]
    logits = {n: predictor.predict_logits(splits[n]["text"], strict=False) for n in names}
    labels = {n: run.task.encode(splits[n]["label"]) for n in names}
    fitted = run.task.fit_policy(
        logits,
        labels,
        threshold_metric=threshold_metric
        if threshold_metric is not None
        else recipe.threshold_metric,
        min_confidence=min_confidence if min_confidence is not None else recipe.min_confidence,
        objective=objective if objective is not None else recipe.objective,
        source=loaded.source,
    )
    policy_path = store_policy(run, fitted.policy, fitted.metrics, own)
    reliability_path = plot_reliability(
        fitted.curves,
        fitted.curve_labels,
        run.file(RELIABILITY_FILE),
        f"{run.name}: {fitted.curve_title}",
    )
    return PolicyReport(fitted.policy, fitted.metrics, policy_path, reliability_path)
