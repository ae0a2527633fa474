"""Fit a run's decision policy on its validation split and store it (``sentiment calibrate``,
and the end of ``sentiment train``): the workflow around the task's policy fitting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.data.load import load_run_data
from sentiment_hf.fileio import write_json
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.rundir import METRICS_FILE, POLICY_FILE, RELIABILITY_FILE, open_run
from sentiment_hf.tasks.calibration import (
    check_objective,
    fit_temperature,
    plot_reliability,
    softmax,
)
from sentiment_hf.tasks.policy import (
    DecisionPolicy,
    check_threshold_metric,
    policy_metrics,
    tune_threshold,
)


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
) -> PolicyReport:
    """Fit the temperature (and a threshold) on the run's validation split and store the policy.

    ``threshold_metric``, ``min_confidence`` and ``objective`` left at None take the run's
    recipe (its ``policy:`` section; the schema's defaults for a run without one), so a refit
    decides as training did unless told otherwise. On the run's own data the validation and
    test rows are those training scored (the recipe's ``data.max_*_samples``), and their
    calibration measures (before and after) join ``metrics.json`` beside training's. ``data``
    (other data) must hold its own validation and test files, never cut out of train; its
    measures are returned but kept out of ``metrics.json``, whose measures of the replaced
    policy are removed. Writes ``policy.json`` (``fitted_on`` names the source and rows) and
    ``reliability.png``. Predictions of every backend follow the stored policy from then on.
    """
    run = open_run(model_dir)
    recipe = run.policy_config
    threshold_metric = threshold_metric if threshold_metric is not None else recipe.threshold_metric
    min_confidence = min_confidence if min_confidence is not None else recipe.min_confidence
    objective = objective if objective is not None else recipe.objective
    if run.multi_label:
        from sentiment_hf.evaluation.multilabel import fit_multilabel_policy

        return fit_multilabel_policy(run, threshold_metric, min_confidence, data, batch_size)
    check_objective(objective)
    if threshold_metric is not None:
        check_threshold_metric(threshold_metric)
    own = data is None
    loaded = load_run_data(run, ("validation", "test"), data, limits=own)
    splits = loaded.splits
    predictor = Predictor(run, batch_size=batch_size, progress="calibrate")
    logits = {name: predictor.predict_logits(splits[name]["text"], strict=False) for name in splits}
    labels = {name: np.asarray(splits[name]["label"]) for name in splits}
    temperature = fit_temperature(logits["validation"], labels["validation"], objective)
    policy = DecisionPolicy(
        temperature=temperature,
        threshold_metric=threshold_metric,
        min_confidence=min_confidence,
        fitted_on={
            "split": "validation",
            "samples": len(labels["validation"]),
            "source": loaded.source,
            "objective": objective,
        },
    )
    if threshold_metric is not None:
        val_probs = policy.probabilities(logits["validation"])
        policy.threshold = tune_threshold(val_probs, labels["validation"], threshold_metric)
    metrics = {"calibration_temperature": temperature}
    for name, prefix in (("validation", "eval"), ("test", "test")):
        metrics.update(policy_metrics(logits[name], labels[name], policy, prefix))
    policy_path = store_policy(run, policy, metrics, own)
    reliability_path = plot_reliability(
        {
            "test, uncalibrated": softmax(logits["test"]),
            f"test, T={temperature:.2f}": policy.probabilities(logits["test"]),
        },
        labels["test"],
        run.file(RELIABILITY_FILE),
        f"{run.name}: reliability (T fitted on validation)",
    )
    return PolicyReport(policy, metrics, policy_path, reliability_path)
