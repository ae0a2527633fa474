"""Hyperparameter search with Optuna through ``Trainer.hyperparameter_search``.

A recipe's ``sweep:`` section (:class:`~sentiment_hf.recipe.SweepConfig`) declares the search
space; the study lives in Optuna's storage (any SQLAlchemy URL, by default a SQLite file in the
sweep directory), so rerunning the same command continues it and several processes started with
the same command share it. Nothing here coordinates workers beyond that storage:

* ``n_trials`` counts finished (complete + pruned) trials of the whole study. A worker asks
  Optuna for a trial, then admits it only if fewer than ``n_trials`` older trials are finished,
  running or waiting; otherwise it marks the trial surplus (FAIL, never run) and stops. Storage
  order decides, so two workers end with exactly ``n_trials`` finished trials.
* A worker that dies leaves a RUNNING trial whose heartbeat goes stale; the next worker to ask
  for a trial fails it and Optuna's ``RetryFailedTrialCallback`` queues a copy that is run again.
* The sampler draws trial ``k`` from ``seed + k``, whichever worker runs it, so parallel workers
  never repeat one another's random draws and a rerun reproduces a one-process study.
* Evaluations happen ``evals_per_epoch`` times per epoch and reach the pruner keyed by their
  index (1, 2, ...), not by ``global_step``: trials with different batch sizes are compared after
  the same number of training samples.

Each trial trains in ``<sweep dir>/trial-NNN``; afterwards only the best trial's directory stays.
The sweep directory receives ``trials.csv``, ``sweep.json``, ``best.yaml`` (a complete recipe for
``sentiment train``) and optimization-history / parameter-importance / learning-curve PNGs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from transformers import Trainer, TrainerCallback

from sentiment_hf.errors import SentimentError
from sentiment_hf.modeling import build_model
from sentiment_hf.recipe import (
    EarlyStoppingConfig,
    Recipe,
    SearchParam,
    SweepConfig,
    recipe_from_dict,
)
from sentiment_hf.train import TrainResult, build_trainer, build_training_args, prepare

log = logging.getLogger(__name__)

DEFAULT_SWEEP_RECIPE = "recipes/sweep.yaml"
BEST_RECIPE_FILE = "best.yaml"
TRIALS_FILE = "trials.csv"
SUMMARY_FILE = "sweep.json"
STUDY_ATTR = "sentiment_hf"
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
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
_NEVER = 10**9  # eval/save "steps" that never come: the schedule callback decides instead


class SurplusTrial(Exception):
    """The study already holds ``n_trials`` finished or running trials: this one is not run."""


@dataclass
class SweepResult:
    """What :func:`sweep` left in the study and the sweep directory."""

    sweep_dir: Path
    study_name: str
    storage: str
    metric: str
    direction: str
    n_trials: int
    trials: list[dict[str, Any]]
    counts: dict[str, int]
    total_train_steps: int
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_recipe: Path | None = None
    best_trial_dir: Path | None = None
    plots: list[Path] = field(default_factory=list)
    trials_csv: Path | None = None
    summary_path: Path | None = None
    retrained: TrainResult | None = None


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


def _signature(cfg: SweepConfig, metric: str) -> dict[str, Any]:
    """What must not change while a study lives: the space and the objective."""
    return {
        "params": {name: dataclasses.asdict(spec) for name, spec in sorted(cfg.params.items())},
        "metric": metric,
        "direction": cfg.direction,
        "objective": cfg.objective,
        "evals_per_epoch": cfg.evals_per_epoch,
    }


def _recipe_digest(recipe: Recipe) -> str:
    raw = recipe.to_dict()
    raw.pop("sweep", None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- storage and study


def _storage_url(cfg: SweepConfig, sweep_dir: Path) -> str:
    if cfg.storage:
        return cfg.storage
    return f"sqlite:///{(sweep_dir / 'study.db').resolve()}"


def open_storage(cfg: SweepConfig, sweep_dir: Path) -> tuple[Any, str]:
    """Optuna RDB storage for ``sweep.storage`` with heartbeats; returns it and a printable URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    url = _storage_url(cfg, sweep_dir)
    hint = (
        "set sweep.storage to a SQLAlchemy URL such as sqlite:///runs/sweep/study.db or "
        "postgresql://user@host/db"
    )
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SentimentError(f"sweep.storage {url!r} is not a database URL; {hint}") from exc
    shown = parsed.render_as_string(hide_password=True)
    sqlite = parsed.get_backend_name() == "sqlite"
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            return _rdb_storage(url, engine_kwargs, cfg), shown
        except DBAPIError as exc:
            if _creation_race(exc) and attempt < 4:  # another worker is creating the schema
                time.sleep(0.5 + attempt)
                continue
            raise SentimentError(
                f"cannot open sweep storage {shown}: {_first_line(exc)}; {hint}"
            ) from exc
        except ImportError as exc:
            raise SentimentError(
                f"cannot open sweep storage {shown}: no database driver for "
                f"{parsed.drivername!r} is installed; install one (postgresql: psycopg2-binary, "
                "mysql: pymysql) or use a sqlite:/// URL"
            ) from exc
        except Exception as exc:  # bad dialect, unreachable server, bad credentials, ...
            raise SentimentError(
                f"cannot open sweep storage {shown}: {type(exc).__name__}: {_first_line(exc)}; "
                f"{hint}"
            ) from exc
    raise AssertionError("unreachable")


#: What a database says when several workers create a new study schema at the same moment (a
#: table or the alembic version row written twice); opening again once it exists succeeds.
_CREATION_RACE = ("already exists", "unique constraint", "duplicate key", "database is locked")


def _creation_race(exc: Exception) -> bool:
    return any(text in str(exc).lower() for text in _CREATION_RACE)


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], cfg: SweepConfig) -> Any:
    """RDBStorage with heartbeats; a stale trial (dead worker) is queued again, up to 3 times."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=cfg.heartbeat_interval,
            grace_period=cfg.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3
            ),
        )


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = [k for k in sorted(set(old) | set(new)) if k != "params" and old.get(k) != new.get(k)]
    old_p, new_p = old.get("params", {}), new.get("params", {})
    changed += [
        f"params.{k}" for k in sorted(set(old_p) | set(new_p)) if old_p.get(k) != new_p.get(k)
    ]
    return changed


def open_study(recipe: Recipe, storage: Any, shown: str) -> optuna.Study:
    """Create the study, or load it after checking that its search space and objective match."""
    cfg = _sweep_config(recipe)
    name = cfg.study_name or recipe.name
    signature = _signature(cfg, objective_metric(recipe))
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        study_id = None
    if study_id is not None:
        _check_signature(storage.get_study_user_attrs(study_id), signature, name, shown)
    study = optuna.create_study(
        storage=storage, study_name=name, direction=cfg.direction, load_if_exists=True
    )
    attrs = study.user_attrs  # another worker may have created it a moment ago
    if STUDY_ATTR in attrs:
        _check_signature(attrs, signature, name, shown)
        if attrs.get("recipe_digest") != _recipe_digest(recipe):
            log.warning(
                "study %r was started from a recipe that differs outside its sweep: section; "
                "trials run now may not be comparable with the earlier ones",
                name,
            )
    else:
        study.set_user_attr(STUDY_ATTR, signature)
        study.set_user_attr("recipe_digest", _recipe_digest(recipe))
    return study


def _check_signature(
    attrs: dict[str, Any], signature: dict[str, Any], name: str, shown: str
) -> None:
    stored = attrs.get(STUDY_ATTR)
    if stored is None:
        raise SentimentError(
            f"study {name!r} in {shown} was not created by `sentiment sweep`; "
            "set sweep.study_name to a new name"
        )
    changed = _diff(stored, signature)
    if changed:
        raise SentimentError(
            f"study {name!r} in {shown} was created with a different search space or objective "
            f"({', '.join(changed)} changed); continue it with its original sweep section, or set "
            "sweep.study_name=NEW_NAME to start a new study"
        )


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


def _planned_evals(recipe: Recipe) -> int | None:
    cfg = _sweep_config(recipe)
    searched = set(cfg.params)
    if {"num_train_epochs", "max_steps"} & searched or recipe.training.get("max_steps", -1) > 0:
        return None
    return max(
        1, math.ceil(float(recipe.training.get("num_train_epochs", 1)) * cfg.evals_per_epoch)
    )


def _trials(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[Any]:
    return study.get_trials(deepcopy=False, states=states)


def _best(study: optuna.Study) -> Any | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def remove_trial_dirs(study: optuna.Study, sweep_dir: Path) -> None:
    """Delete the directories of ended trials, except the best trial's (running ones stay)."""
    best = _best(study)
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    for trial in _trials(study, ended):
        if best is None or trial.number != best.number:
            shutil.rmtree(sweep_dir / trial_dir_name(trial.number), ignore_errors=True)


# ---------------------------------------------------------------- trials inside the Trainer


class EvalSchedule(TrainerCallback):
    """Evaluate (and checkpoint) ``per_epoch`` times per epoch and at the end of training.

    ``index`` numbers the evaluations by the share of an epoch they come after (1 = first
    ``1/per_epoch`` epoch), the same for every batch size; it is the step the pruner sees.
    """

    def __init__(self, per_epoch: int) -> None:
        self.per_epoch = per_epoch
        self.index = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.index = 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        crossed = math.floor((state.epoch or 0.0) * self.per_epoch + 1e-6)
        if crossed > self.index:
            self.index = crossed
        elif state.global_step >= state.max_steps:
            self.index += 1  # a final partial share of an epoch
        else:
            return control
        control.should_evaluate = True
        if args.save_strategy != "no":
            control.should_save = True
        return control


def _suggest(trial: optuna.Trial, name: str, spec: SearchParam) -> Any:
    if spec.type == "float":
        return trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)
    if spec.type == "int":
        step = int(spec.step) if spec.step is not None else 1
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log, step=step)
    return trial.suggest_categorical(name, spec.choices)


class SweepTrainer(Trainer):
    """A Trainer whose trials are admitted against ``n_trials`` and report by evaluation index."""

    sweep_n_trials: int
    sweep_dir: Path
    sweep_schedule: EvalSchedule
    sweep_objective: str
    sweep_direction: str
    sweep_pruner: str

    def train(self, resume_from_checkpoint: Any = None, trial: Any = None, **kwargs: Any) -> Any:
        if trial is None or not isinstance(trial, optuna.Trial):
            return super().train(
                resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs
            )
        study = trial.study
        older = [t for t in _trials(study, TAKEN) if t._trial_id < trial._trial_id]
        if len(older) >= self.sweep_n_trials:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise SurplusTrial(
                f"trial {trial.number} not run: {len(older)} trials of {self.sweep_n_trials} "
                "are already finished or running"
            )
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("pruner", self.sweep_pruner)
        remove_trial_dirs(study, self.sweep_dir)
        try:
            return super().train(
                resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs
            )
        finally:
            if len(_trials(study, (*FINISHED, TrialState.RUNNING))) >= self.sweep_n_trials:
                study.stop()  # the remaining trials are finished or held by other workers

    def _report_to_hp_search(self, trial: Any, step: int, metrics: dict[str, float]) -> None:
        if self.hp_search_backend is None or trial is None:
            return
        value = self.compute_objective(metrics)
        better = max if self.sweep_direction == "maximize" else min
        if self.sweep_objective == "best" and self.objective is not None:
            self.objective = better(self.objective, value)
        else:
            self.objective = value
        if not isinstance(trial, optuna.Trial):
            return
        index = self.sweep_schedule.index
        trial.set_user_attr("train_steps", int(self.state.global_step))
        trial.set_user_attr("epochs", round(float(self.state.epoch or 0.0), 4))
        trial.report(value, index)
        if trial.should_prune():
            self.callback_handler.on_train_end(self.args, self.state, self.control)
            raise optuna.TrialPruned(f"pruned at evaluation {index} with {value:.4f}")


class _SurplusFilter(logging.Filter):
    """Optuna logs a surplus trial as a failure with a traceback; log one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, SurplusTrial) or "SurplusTrial" in record.getMessage():
            log.info("%s", exc or "surplus trial not run")
            return False
        return True


@contextlib.contextmanager
def _quiet_surplus() -> Iterator[None]:
    logger = logging.getLogger("optuna.study._optimize")
    flt = _SurplusFilter()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


def _wandb_callback(group: str) -> Any:
    """W&B's Trainer callback with each trial's run grouped under the study name."""
    from transformers.integrations import WandbCallback

    class SweepWandbCallback(WandbCallback):
        def setup(self, args: Any, state: Any, model: Any, **kwargs: Any) -> None:
            saved, args.run_name = args.run_name, group  # WandbCallback groups trials by run_name
            try:
                super().setup(args, state, model, **kwargs)
            finally:
                args.run_name = saved
            if self._wandb is not None and self._wandb.run is not None:
                self._wandb.config.update(
                    {"sweep": group, "trial_params": state.trial_params or {}},
                    allow_val_change=True,
                )

    return SweepWandbCallback()


def _build_sweep_trainer(recipe: Recipe, study_name: str, n_trials: int) -> SweepTrainer:
    cfg = _sweep_config(recipe)
    # Trials are judged by the pruner, not by early stopping; evaluation follows EvalSchedule.
    trial_recipe = dataclasses.replace(recipe, early_stopping=EarlyStoppingConfig(patience=None))
    save = "no" if str(recipe.training.get("save_strategy", "epoch")) == "no" else "steps"
    args = build_training_args(
        trial_recipe,
        eval_strategy="steps",
        eval_steps=_NEVER,
        save_strategy=save,
        save_steps=_NEVER,
        save_only_model=True,  # trial checkpoints only keep weights: a trial is never resumed
    )
    prepared = prepare(trial_recipe, args)
    model_params = {k: v for k, v in cfg.params.items() if k.startswith("model.")}

    def model_init(trial: Any = None) -> Any:
        overrides = {}
        if isinstance(trial, optuna.Trial):
            for name, spec in model_params.items():
                overrides[name.removeprefix("model.")] = _suggest(trial, name, spec)
        return build_model(prepared.backbone_path, prepared.label_names, recipe.model, **overrides)

    schedule = EvalSchedule(cfg.evals_per_epoch)
    trainer = build_trainer(prepared, args, model_init=model_init, callbacks=[schedule])
    trainer.__class__ = SweepTrainer  # same object, with the sweep's two overrides
    trainer.sweep_n_trials = n_trials
    trainer.sweep_dir = recipe.output_dir
    trainer.sweep_schedule = schedule
    trainer.sweep_objective = cfg.objective
    trainer.sweep_direction = cfg.direction
    trainer.sweep_pruner = pruner_description(cfg)
    if recipe.tracking.wandb:
        from transformers.integrations import WandbCallback

        trainer.pop_callback(WandbCallback)
        trainer.add_callback(_wandb_callback(study_name))
    return trainer


def _finish_wandb(recipe: Recipe) -> None:
    if not recipe.tracking.wandb:
        return
    import wandb

    if wandb.run is not None:
        wandb.finish()


# ---------------------------------------------------------------- the sweep


def _declared_dead(cfg: SweepConfig, exc: Exception) -> None:
    """Another worker failed this worker's running trial as stale; it is retried, so stop here."""
    log.warning(
        "another worker declared this worker's trial dead (no heartbeat for %s s) and queued it "
        "again; this worker stops (%s). On a busy machine raise sweep.grace_period",
        cfg.grace_period or 2 * cfg.heartbeat_interval,
        _first_line(exc),
    )


def sweep(recipe: Recipe, retrain_best: bool = False) -> SweepResult:
    """Run (or continue) the recipe's study until ``sweep.n_trials`` trials are finished.

    Bad spaces, storage URLs and changed spaces fail before any trial, leaving the study as it
    was. Afterwards the sweep directory holds the trial table, ``best.yaml`` and plots; with
    ``retrain_best`` the best recipe is trained to ``<sweep dir>/best`` with test metrics.
    """
    cfg = _sweep_config(recipe)
    metric = objective_metric(recipe)
    sweep_dir = recipe.output_dir
    if cfg.storage is None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    storage, shown = open_storage(cfg, sweep_dir)
    study = open_study(recipe, storage, shown)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    # Trials this worker may start; waiting ones (retries of dead workers' trials) come first.
    remaining = cfg.n_trials - len(_trials(study, (*FINISHED, TrialState.RUNNING)))
    if remaining > 0:
        log.info("study %r: %d of %d trials to run", study.study_name, remaining, cfg.n_trials)
        trainer = _build_sweep_trainer(recipe, study.study_name, cfg.n_trials)
        model_params = {k for k in cfg.params if k.startswith("model.")}

        def hp_space(trial: optuna.Trial) -> dict[str, Any]:
            return {
                name: _suggest(trial, name, spec)
                for name, spec in cfg.params.items()
                if name not in model_params
            }

        def compute_objective(metrics: dict[str, float]) -> float:
            key = f"eval_{metric}"
            if key not in metrics:
                raise SentimentError(f"evaluation did not report {key}; fix sweep.metric")
            return float(metrics[key])

        try:
            with _quiet_surplus():
                trainer.hyperparameter_search(
                    hp_space=hp_space,
                    compute_objective=compute_objective,
                    n_trials=remaining,
                    direction=cfg.direction,
                    backend="optuna",
                    hp_name=lambda trial: trial_dir_name(trial.number),
                    storage=storage,
                    study_name=study.study_name,
                    load_if_exists=True,
                    sampler=make_sampler(cfg),
                    pruner=make_pruner(cfg, _planned_evals(recipe)),
                    timeout=cfg.timeout,
                    catch=(SurplusTrial,),
                )
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            _declared_dead(cfg, exc)
        except ValueError as exc:
            if "Cannot tell a" in str(exc):
                _declared_dead(cfg, exc)
            elif "No trials are completed yet" not in str(exc):  # the Trainer's best_trial
                raise
        finally:
            _finish_wandb(recipe)
    remove_trial_dirs(study, sweep_dir)
    result = summarize(study, recipe, shown)
    if retrain_best:
        if result.best_recipe is None:
            raise SentimentError("--retrain-best: the study has no complete trial yet")
        from sentiment_hf.recipe import load_recipe
        from sentiment_hf.train import train

        result.retrained = train(load_recipe(result.best_recipe), overwrite=True)
    return result


# ---------------------------------------------------------------- report


def _write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through a temp file of this process, then rename (workers may write at once)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    tmp.replace(path)
    return path


def best_recipe(recipe: Recipe, params: dict[str, Any], number: int | None = None) -> Recipe:
    """The recipe with the best trial's values, no sweep section, training into ``<dir>/best``."""
    raw = recipe.to_dict()
    raw.pop("sweep", None)
    for name, value in params.items():
        if name.startswith("model."):
            raw["model"][name.removeprefix("model.")] = value
        else:
            raw["training"][name] = value
    raw["training"]["output_dir"] = str(recipe.output_dir / "best")
    raw["name"] = f"{recipe.name}-best" if number is None else f"{recipe.name}-trial-{number}"
    return recipe_from_dict(raw)


def _trial_row(trial: Any) -> dict[str, Any]:
    steps = sorted(trial.intermediate_values)
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "evals": len(steps),
        "last_eval": steps[-1] if steps else None,
        "train_steps": trial.user_attrs.get("train_steps"),
        "epochs": trial.user_attrs.get("epochs"),
        "duration_s": round(trial.duration.total_seconds(), 1) if trial.duration else None,
        "surplus": bool(trial.user_attrs.get("surplus")),
        "params": dict(trial.params),
    }


def _write_trials_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    names = sorted({k for row in rows for k in row["params"]})
    columns = [k for k in rows[0] if k != "params"] + names if rows else ["number"]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                flat = {**{k: v for k, v in row.items() if k != "params"}, **row["params"]}
                writer.writerow(["" if flat.get(c) is None else flat.get(c) for c in columns])

    return _write_atomic(path, write)


def write_plots(study: optuna.Study, sweep_dir: Path) -> list[Path]:
    """Optimization history, parameter importances and learning curves as PNG (when possible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = {
        "optimization_history.png": ovm.plot_optimization_history,
        "param_importances.png": ovm.plot_param_importances,
        "intermediate_values.png": ovm.plot_intermediate_values,
    }
    written = []
    for filename, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            _write_atomic(sweep_dir / filename, partial(figure.savefig, dpi=100, format="png"))
            plt.close(figure)
            written.append(sweep_dir / filename)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials for it
            log.info("skipped %s: %s", filename, _first_line(exc))
            plt.close("all")
    return written


def summarize(study: optuna.Study, recipe: Recipe, shown: str) -> SweepResult:
    """Trial table, ``best.yaml``, plots and ``sweep.json`` from what the storage holds now."""
    cfg = _sweep_config(recipe)
    sweep_dir = recipe.output_dir
    trials = sorted(_trials(study), key=lambda t: t.number)
    rows = [_trial_row(t) for t in trials if not t.user_attrs.get("surplus")]
    counts = {state.name.lower(): 0 for state in TrialState}
    for row in rows:
        counts[row["state"].lower()] += 1
    counts["finished"] = counts["complete"] + counts["pruned"]
    counts["surplus"] = sum(1 for t in trials if t.user_attrs.get("surplus"))
    total = sum(r["train_steps"] or 0 for r in rows if r["state"] in ("COMPLETE", "PRUNED"))
    result = SweepResult(
        sweep_dir=sweep_dir,
        study_name=study.study_name,
        storage=shown,
        metric=objective_metric(recipe),
        direction=cfg.direction,
        n_trials=cfg.n_trials,
        trials=rows,
        counts=counts,
        total_train_steps=int(total),
    )
    result.trials_csv = _write_trials_csv(rows, sweep_dir / TRIALS_FILE)
    best = _best(study)
    if best is not None:
        result.best_number, result.best_value = best.number, best.value
        result.best_params = dict(best.params)
        winner = best_recipe(recipe, best.params)
        text = (
            f"# best trial {best.number} of study {study.study_name!r}: "
            f"{result.metric}={best.value:.4f}; written by `sentiment sweep`.\n"
            f"# Train it: sentiment train {sweep_dir / BEST_RECIPE_FILE}\n" + winner.to_yaml()
        )
        path = sweep_dir / BEST_RECIPE_FILE
        result.best_recipe = _write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        trial_dir = sweep_dir / trial_dir_name(best.number)
        result.best_trial_dir = trial_dir if trial_dir.is_dir() else None
    result.plots = write_plots(study, sweep_dir)
    running = counts["running"] + counts["waiting"]
    if counts["finished"] + running < cfg.n_trials:
        log.warning(
            "study %r has %d of %d trials finished; rerun the same command to continue it",
            study.study_name,
            counts["finished"],
            cfg.n_trials,
        )
    elif running:
        log.warning(
            "study %r: %d trial(s) still running in other workers (or in a crashed worker: its "
            "trial is retried by the next run once its heartbeat is older than the grace "
            "period); the last worker to finish rewrites this report",
            study.study_name,
            running,
        )
    summary = {
        k: v
        for k, v in dataclasses.asdict(result).items()
        if k not in ("retrained", "summary_path")
    }
    text = json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
    result.summary_path = _write_atomic(
        sweep_dir / SUMMARY_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8")
    )
    return result


def format_trials(result: SweepResult) -> str:
    """The trial table and the best trial, for the terminal."""
    names = sorted({k for row in result.trials for k in row["params"]})
    header = ["#", "state", result.metric, "evals", "steps", *names]
    lines = [header]
    for row in result.trials:
        value = "" if row["value"] is None else f"{row['value']:.4f}"
        params = [_fmt(row["params"].get(n)) for n in names]
        lines.append(
            [
                str(row["number"]),
                row["state"].lower(),
                value,
                str(row["evals"]),
                str(row["train_steps"] or ""),
                *params,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )
    c = result.counts
    out = [
        f"study {result.study_name!r} ({result.storage}): {c['finished']}/{result.n_trials} "
        f"finished ({c['complete']} complete, {c['pruned']} pruned), {c['fail']} failed, "
        f"{result.total_train_steps} training steps",
        table,
    ]
    if result.best_number is not None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in result.best_params.items())
        out.append(
            f"best: trial {result.best_number} {result.metric}={result.best_value:.4f} ({params})"
        )
        out.append(f"best recipe: {result.best_recipe}   (sentiment train {result.best_recipe})")
    if result.plots:
        out.append("plots: " + ", ".join(str(p) for p in result.plots))
    if result.retrained is not None:
        metrics = result.retrained.metrics
        keys = ("eval_accuracy", "test_accuracy", "test_f1")
        out.append(
            f"retrained best to {result.retrained.run_dir}: "
            + ", ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)
        )
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)
