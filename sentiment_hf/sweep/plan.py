"""The sweep plan: what a sweep derives from its recipe, resolved once before anything runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment_hf.config.recipe import Recipe, SweepConfig
from sentiment_hf.errors import SentimentError

DEFAULT_SWEEP_RECIPE = "recipes/sweep.yaml"
#: Metrics that ``compute_metrics`` reports (``eval_`` + name); ``loss`` comes from the Trainer.
METRICS = (
    "accuracy",
    "f1",
    "precision",
    "recall",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "loss",
)


def trial_dir_name(number: int) -> str:
    """The directory a trial trains in, relative to the sweep directory."""
    return f"trial-{number:03d}"


def objective_metric(recipe: Recipe) -> str:
    """The metric the study optimizes (without ``eval_``), checked against the direction."""
    cfg = _sweep_config(recipe)
    metric = cfg.metric or str(recipe.training.get("metric_for_best_model") or "accuracy")
    metric = metric.removeprefix("eval_")
    if metric not in METRICS:
        raise SentimentError(
            f"sweep.metric {metric!r} is not a metric the evaluation reports; use one of "
            f"{', '.join(METRICS)}"
        )
    if metric == "loss" and cfg.direction == "maximize":
        raise SentimentError("sweep.metric is loss but sweep.direction is maximize; set minimize")
    return metric


def _sweep_config(recipe: Recipe) -> SweepConfig:
    if recipe.sweep is None:
        raise SentimentError(
            f"recipe {recipe.name!r} has no sweep: section; add one (see {DEFAULT_SWEEP_RECIPE}) "
            "or run `sentiment sweep` with that file"
        )
    return recipe.sweep


def storage_url(cfg: SweepConfig, sweep_dir: Path) -> str:
    """``sweep.storage``, or by default a SQLite file in the sweep directory."""
    if cfg.storage:
        return cfg.storage
    return f"sqlite:///{(sweep_dir / 'study.db').resolve()}"


def _planned_evals(recipe: Recipe, cfg: SweepConfig) -> int | None:
    """Evaluations per trial when every trial trains as long (Hyperband's max resource)."""
    searched = set(cfg.params)
    if {"num_train_epochs", "max_steps"} & searched or recipe.training.get("max_steps", -1) > 0:
        return None
    return max(
        1, math.ceil(float(recipe.training.get("num_train_epochs", 1)) * cfg.evals_per_epoch)
    )


@dataclass(frozen=True)
class SweepPlan:
    """One sweep's settings, resolved once from its recipe (:meth:`from_recipe`)."""

    recipe: Recipe
    cfg: SweepConfig
    metric: str
    direction: str
    study_name: str
    storage_url: str
    sweep_dir: Path
    planned_evals: int | None

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> SweepPlan:
        """Check the recipe's sweep section and objective and resolve what follows from them."""
        cfg = _sweep_config(recipe)
        return cls(
            recipe=recipe,
            cfg=cfg,
            metric=objective_metric(recipe),
            direction=cfg.direction,
            study_name=cfg.study_name or recipe.name,
            storage_url=storage_url(cfg, recipe.output_dir),
            sweep_dir=recipe.output_dir,
            planned_evals=_planned_evals(recipe, cfg),
        )

    def signature(self) -> dict[str, Any]:
        """What must not change while a study lives: the space and the objective."""
        cfg = self.cfg
        return {
            "params": {name: dataclasses.asdict(spec) for name, spec in sorted(cfg.params.items())},
            "metric": self.metric,
            "direction": self.direction,
            "objective": cfg.objective,
            "evals_per_epoch": cfg.evals_per_epoch,
        }

    def recipe_digest(self) -> str:
        """A hash of the recipe outside its sweep section (a changed one is only a warning)."""
        raw = self.recipe.to_dict()
        raw.pop("sweep", None)
        text = json.dumps(raw, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def as_plan(recipe: Recipe | SweepPlan) -> SweepPlan:
    """``recipe``'s plan (a plan is returned as it is)."""
    return recipe if isinstance(recipe, SweepPlan) else SweepPlan.from_recipe(recipe)
