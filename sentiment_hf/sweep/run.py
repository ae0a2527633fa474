"""The sweep: open the study, search with the Trainer until ``n_trials`` are finished, report."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sentiment_hf.config.recipe import Recipe, SweepConfig
from sentiment_hf.errors import SentimentError
from sentiment_hf.sweep import compat
from sentiment_hf.sweep.plan import SweepPlan, trial_dir_name
from sentiment_hf.sweep.report import SweepResult, summarize
from sentiment_hf.sweep.space import make_pruner, make_sampler, training_space
from sentiment_hf.sweep.storage import (
    FINISHED,
    first_line,
    open_storage_url,
    open_study,
    remove_trial_dirs,
    trials,
)
from sentiment_hf.sweep.trainer import (
    SurplusTrial,
    build_sweep_trainer,
    finish_wandb,
    quiet_surplus,
)

log = logging.getLogger(__package__)  # "sentiment_hf.sweep", as log lines always read


def _declared_dead(cfg: SweepConfig, exc: Exception) -> None:
    """Another worker failed this worker's running trial as stale; it is retried, so stop here."""
    log.warning(
        "another worker declared this worker's trial dead (no heartbeat for %s s) and queued it "
        "again; this worker stops (%s). On a busy machine raise sweep.grace_period",
        cfg.grace_period or 2 * cfg.heartbeat_interval,
        first_line(exc),
    )


def _search(plan: SweepPlan, storage: object, remaining: int) -> None:
    """Run up to ``remaining`` trials of the plan's study in this process."""
    cfg = plan.cfg
    trainer = build_sweep_trainer(plan)
    key = f"eval_{plan.metric}"

    def compute_objective(metrics: dict[str, float]) -> float:
        if key not in metrics:
            raise SentimentError(f"evaluation did not report {key}; fix sweep.metric")
        return float(metrics[key])

    try:
        with quiet_surplus():
            trainer.hyperparameter_search(
                hp_space=training_space(cfg),
                compute_objective=compute_objective,
                n_trials=remaining,
                direction=plan.direction,
                backend="optuna",
                hp_name=lambda trial: trial_dir_name(trial.number),
                storage=storage,
                study_name=plan.study_name,
                load_if_exists=True,
                sampler=make_sampler(cfg),
                pruner=make_pruner(cfg, plan.planned_evals),
                timeout=cfg.timeout,
                catch=(SurplusTrial,),
            )
    except optuna.exceptions.UpdateFinishedTrialError as exc:
        _declared_dead(cfg, exc)
    except ValueError as exc:
        if compat.is_tell_on_finished_trial(exc):
            _declared_dead(cfg, exc)
        elif not compat.is_no_complete_trial(exc):  # the Trainer's best_trial
            raise
    finally:
        finish_wandb(plan.recipe)


def _has_study(storage: Any, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


class _Made:
    """What this call created before its first trial, so that a failure there (data that cannot
    be loaded, a backbone not found) leaves the storage and the folder as they were."""

    def __init__(self, sweep_dir: Path, study_name: str, default_file: bool) -> None:
        self.sweep_dir, self.study_name = sweep_dir, study_name
        self.top: Path | None = None  # the outermost folder this call creates (runs/ as well)
        if not sweep_dir.exists():
            self.top = sweep_dir
            while not self.top.parent.exists():
                self.top = self.top.parent
        self.file = sweep_dir / "study.db" if default_file else None
        self.file_existed = self.file is not None and self.file.exists()
        self.study = False

    def undo(self, storage: Any) -> None:
        """Delete the study this call created if it still has no trial (another worker may have
        joined it and started one: then it stays), the default SQLite file this call created,
        and the folders this call created if they are empty."""
        if storage is not None and self.study:
            try:
                study_id = storage.get_study_id_from_name(self.study_name)
                if storage.get_all_trials(study_id, deepcopy=False):
                    return
                storage.delete_study(study_id)
            except Exception:  # cleanup must not hide the error being raised
                log.debug("could not delete the new study %r", self.study_name, exc_info=True)
                return
        if storage is not None and hasattr(storage, "remove_session"):
            storage.remove_session()
            engine = getattr(storage, "engine", None)
            if engine is not None:
                engine.dispose()
        if self.file is not None and not self.file_existed:
            for path in (self.file, *self.file.parent.glob(f"{self.file.name}-*")):
                path.unlink(missing_ok=True)
        if self.top is None:
            return
        folder = self.sweep_dir
        while folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            if folder == self.top:
                break
            folder = folder.parent


def sweep(recipe: Recipe, retrain_best: bool = False) -> SweepResult:
    """Run (or continue) the recipe's study until ``sweep.n_trials`` trials are finished.

    Bad spaces, storage URLs and changed spaces fail before any trial, leaving the study as it
    was. Afterwards the sweep directory holds the trial table, ``best.yaml`` and plots; with
    ``retrain_best`` the best recipe is trained to ``<sweep dir>/best`` with test metrics.
    """
    plan = SweepPlan.from_recipe(recipe)
    cfg, sweep_dir = plan.cfg, plan.sweep_dir
    made = _Made(sweep_dir, plan.study_name, default_file=cfg.storage is None)
    if cfg.storage is None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    try:
        storage, shown = open_storage_url(plan.storage_url, cfg)
    except BaseException:
        made.undo(None)
        raise
    made.study = not _has_study(storage, plan.study_name)
    try:
        study = open_study(plan, storage, shown)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        # Trials this worker may start; waiting ones (retries of dead workers' trials) first.
        remaining = cfg.n_trials - len(trials(study, (*FINISHED, TrialState.RUNNING)))
        if remaining > 0:
            log.info("study %r: %d of %d trials to run", study.study_name, remaining, cfg.n_trials)
            _search(plan, storage, remaining)
    except BaseException:
        made.undo(storage)  # e.g. the data could not be loaded (offline): no study.db is left
        raise
    remove_trial_dirs(study, sweep_dir)
    result = summarize(study, plan, shown)
    if retrain_best:
        if result.best_recipe is None:
            raise SentimentError("--retrain-best: the study has no complete trial yet")
        from sentiment_hf.config.recipe import load_recipe
        from sentiment_hf.training.train import train

        result.retrained = train(load_recipe(result.best_recipe), overwrite=True)
    return result
