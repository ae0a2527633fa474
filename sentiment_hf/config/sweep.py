"""The ``sweep`` section of a recipe: the search space's schema and its validation.

Part of the recipe schema (:mod:`sentiment_hf.config.recipe` builds it and re-exports the names);
the
sweep itself runs in :mod:`sentiment_hf.sweep`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from sentiment_hf.config.schema import build, coerce
from sentiment_hf.errors import SentimentError

#: Model hyperparameters a sweep may search as ``model.<name>`` (applied through ``model_init``).
SEARCHABLE_MODEL_PARAMS: tuple[str, ...] = ("dropout",)


@dataclass
class SearchParam:
    """One dimension of a sweep's search space: float (linear or log), int, or categorical."""

    type: typing.Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


@dataclass
class SweepConfig:
    """``sentiment sweep``: Optuna search space, budget, sampler, pruner, storage and objective.

    ``params`` maps a TrainingArguments field (``learning_rate``, optionally written
    ``training.learning_rate``) or a model parameter (``model.dropout``) to a
    :class:`SearchParam`. ``n_trials`` counts finished (complete + pruned) trials of the whole
    study, across reruns and workers. Evaluations happen ``evals_per_epoch`` times per epoch and
    are reported to the pruner by their index, so trials with different batch sizes compare
    like with like. ``storage`` is any SQLAlchemy URL (default: ``study.db`` in the sweep
    directory, i.e. ``training.output_dir``), e.g. ``postgresql://USER@HOST/DB`` for workers on
    several machines, or ``env:NAME`` to read the URL (and its password) from environment
    variable NAME; a password is shown as ``***`` everywhere. ``metric`` defaults to
    ``training.metric_for_best_model``; ``objective`` is a trial's ``best`` or ``last`` evaluation.
    """

    params: dict[str, SearchParam] = field(default_factory=dict)
    n_trials: int = 10
    timeout: float | None = None
    seed: int = 42
    sampler: typing.Literal["tpe", "random"] = "tpe"
    pruner: typing.Literal["none", "median", "hyperband"] = "median"
    startup_trials: int = 2
    warmup_evals: int = 0
    reduction_factor: int = 3
    evals_per_epoch: int = 1
    metric: str | None = None
    direction: typing.Literal["maximize", "minimize"] = "maximize"
    objective: typing.Literal["best", "last"] = "best"
    storage: str | None = None
    study_name: str | None = None
    heartbeat_interval: int = 10
    grace_period: int | None = None


def _check_search_param(name: str, spec: SearchParam, where: str) -> SearchParam:
    """Bounds and choices of one search dimension, typed against the field it sets."""
    numeric = spec.type in ("float", "int")
    if numeric:
        if spec.low is None or spec.high is None or spec.choices is not None:
            raise SentimentError(f"{where}: type {spec.type} needs low and high (and no choices)")
        if spec.low >= spec.high:
            raise SentimentError(f"{where}: low ({spec.low:g}) must be below high ({spec.high:g})")
        if spec.log and spec.low <= 0:
            raise SentimentError(f"{where}: log scale needs low > 0, got {spec.low:g}")
        if spec.log and spec.step is not None:
            raise SentimentError(f"{where}: step and log cannot be combined; drop one")
        if spec.step is not None and spec.step <= 0:
            raise SentimentError(f"{where}: step must be positive, got {spec.step:g}")
        if spec.type == "int":
            for key in ("low", "high", "step"):
                value = getattr(spec, key)
                if value is not None and not float(value).is_integer():
                    raise SentimentError(f"{where}.{key}: type int needs a whole number: {value}")
                if value is not None:
                    setattr(spec, key, int(value))
        values: list[Any] = [spec.low, spec.high]
    else:
        if spec.low is not None or spec.high is not None or spec.log or spec.step is not None:
            raise SentimentError(f"{where}: type categorical takes choices only (no low/high/log)")
        if not spec.choices:
            raise SentimentError(f"{where}: categorical needs a non-empty list of choices")
        for i, choice in enumerate(spec.choices):
            if not (choice is None or isinstance(choice, (bool, int, float, str))):
                raise SentimentError(f"{where}.choices[{i}]: must be a number, string or bool")
        values = list(spec.choices)
    if name.startswith("model."):
        bad = [v for v in values if not isinstance(v, (int, float)) or not 0 <= v < 1]
        if bad:
            raise SentimentError(f"{where}: {name} must lie in [0, 1), got {bad[0]!r}")
        return spec
    hint = typing.get_type_hints(__import__("transformers").TrainingArguments).get(name, Any)
    if spec.type == "float" and hint is int:
        raise SentimentError(
            f"{where}: TrainingArguments.{name} is an integer; use type: int or categorical"
        )
    for value in values:
        if spec.type == "float" and hint is not Any:
            value = float(value)
        coerce(value, hint, f"{where} (TrainingArguments.{name})")
    return spec


def _flatten_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Canonical names for ``sweep.params``: ``training.X`` → ``X``.

    ``model: {dropout: ...}`` and ``model.dropout`` are one entry (the override
    ``sweep.params.model.dropout.high=0.3`` nests); later entries update earlier ones by key.
    """
    entries: list[tuple[str, Any]] = []
    for key, value in raw.items():
        key = str(key)
        nested = key in ("model", "training") and isinstance(value, dict)
        if nested and all(v is None or isinstance(v, dict) for v in value.values()):
            entries += [(f"{key}.{sub}", spec) for sub, spec in value.items()]
        else:
            entries.append((key, value))
    merged: dict[str, Any] = {}
    for key, value in entries:
        name = key.removeprefix("training.")
        old = merged.get(name)
        if isinstance(old, dict) and isinstance(value, dict):
            value = {**old, **value}
        merged[name] = value
    return merged


def build_sweep(data: Any, where: str, fields: dict[str, Any]) -> SweepConfig:
    """The ``sweep`` section, with every search dimension validated (names, bounds, choices);
    ``fields`` are the TrainingArguments fields a dimension may name."""
    cfg = build(SweepConfig, data, where)
    if not isinstance(cfg.params, dict) or not cfg.params:
        raise SentimentError(
            f"{where}.params: declare at least one hyperparameter, e.g. "
            "learning_rate: {type: float, low: 1.0e-5, high: 1.0e-4, log: true}"
        )
    searchable = ", ".join(f"model.{p}" for p in SEARCHABLE_MODEL_PARAMS)
    params: dict[str, SearchParam] = {}
    for name, raw_spec in _flatten_params(cfg.params).items():
        if raw_spec is None:
            continue  # an override `sweep.params.NAME=null` drops a dimension
        sub = f"{where}.params.{name}"
        if name.startswith("model."):
            if name[len("model.") :] not in SEARCHABLE_MODEL_PARAMS:
                raise SentimentError(
                    f"{sub}: model parameter {name!r} cannot be searched; searchable: {searchable}"
                )
        elif name not in fields:
            raise SentimentError(
                f"{sub}: unknown hyperparameter {name!r}: neither a transformers.TrainingArguments "
                f"field nor a model parameter ({searchable}); fix the name"
            )
        spec = raw_spec if isinstance(raw_spec, SearchParam) else build(SearchParam, raw_spec, sub)
        params[name] = _check_search_param(name, spec, sub)
    if not params:
        raise SentimentError(f"{where}.params: every hyperparameter was removed; keep at least one")
    for key in ("n_trials", "evals_per_epoch", "heartbeat_interval", "reduction_factor"):
        if getattr(cfg, key) < 1:
            raise SentimentError(f"{where}.{key}: must be at least 1, got {getattr(cfg, key)}")
    for key in ("startup_trials", "warmup_evals"):
        if getattr(cfg, key) < 0:
            raise SentimentError(f"{where}.{key}: must be 0 or more, got {getattr(cfg, key)}")
    if cfg.reduction_factor < 2 and cfg.pruner == "hyperband":
        raise SentimentError(f"{where}.reduction_factor: hyperband needs at least 2")
    if cfg.timeout is not None and cfg.timeout <= 0:
        raise SentimentError(f"{where}.timeout: must be positive seconds or null")
    cfg.params = params
    return cfg
