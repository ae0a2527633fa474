"""The search space, the sampler and the pruner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from sentiment_hf.config.sweep import SearchParam, SweepConfig

MODEL_PREFIX = "model."


def suggest(trial: optuna.Trial, name: str, spec: SearchParam) -> Any:
    """Draw ``name`` from ``spec`` for ``trial``."""
    if spec.type == "float":
        return trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)
    if spec.type == "int":
        step = int(spec.step) if spec.step is not None else 1
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log, step=step)
    return trial.suggest_categorical(name, spec.choices)


def training_space(cfg: SweepConfig) -> Callable[[optuna.Trial], dict[str, Any]]:
    """``hp_space`` for ``Trainer.hyperparameter_search``: the searched training arguments."""
    params = {n: spec for n, spec in cfg.params.items() if not n.startswith(MODEL_PREFIX)}

    def hp_space(trial: optuna.Trial) -> dict[str, Any]:
        return {name: suggest(trial, name, spec) for name, spec in params.items()}

    return hp_space


def model_overrides(cfg: SweepConfig, trial: optuna.Trial) -> dict[str, Any]:
    """The searched ``model.`` settings drawn for ``trial``, keyed without the prefix."""
    return {
        name.removeprefix(MODEL_PREFIX): suggest(trial, name, spec)
        for name, spec in cfg.params.items()
        if name.startswith(MODEL_PREFIX)
    }


class _TrialSeededSampler(optuna.samplers.BaseSampler):
    """Draws of trial ``k`` come from ``seed + k``, whichever worker runs the trial."""

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        self._inner = self._make(self._seed + trial.number)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: Any) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: Any, param_name: str, param_distribution: Any
    ) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: Any, state: TrialState, values: Any) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(cfg: SweepConfig) -> optuna.samplers.BaseSampler:
    """TPE (constant liar, for parallel workers) or random, seeded per trial number."""
    if cfg.sampler == "random":
        return _TrialSeededSampler(lambda s: optuna.samplers.RandomSampler(seed=s), cfg.seed)
    return _TrialSeededSampler(
        lambda s: optuna.samplers.TPESampler(seed=s, constant_liar=True), cfg.seed
    )


def pruner_description(cfg: SweepConfig) -> str:
    """The pruner and its settings, as recorded on each trial."""
    if cfg.pruner == "median":
        return f"median(startup_trials={cfg.startup_trials}, warmup_evals={cfg.warmup_evals})"
    if cfg.pruner == "hyperband":
        return f"hyperband(reduction_factor={cfg.reduction_factor})"
    return "none"


def make_pruner(cfg: SweepConfig, max_evals: int | None) -> optuna.pruners.BasePruner:
    """Median or Hyperband over evaluation indices, or none."""
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_evals + 1
        )
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1,
            max_resource=max_evals if max_evals else "auto",
            reduction_factor=cfg.reduction_factor,
        )
    return optuna.pruners.NopPruner()
