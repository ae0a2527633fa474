"""Trials inside the Trainer: the evaluation schedule, admission against ``n_trials``, pruning."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import socket
from collections.abc import Iterator
from functools import partial
from typing import Any

import optuna
from optuna.trial import TrialState
from transformers import TrainerCallback

from sentiment_hf.config.recipe import EarlyStoppingConfig, Recipe
from sentiment_hf.modeling import build_model
from sentiment_hf.sweep import compat
from sentiment_hf.sweep.plan import SweepPlan
from sentiment_hf.sweep.space import model_overrides, pruner_description
from sentiment_hf.sweep.storage import FINISHED, TAKEN, remove_trial_dirs, trials
from sentiment_hf.training.sampling import SeededSamplingMixin
from sentiment_hf.training.train import build_trainer, build_training_args, prepare

log = logging.getLogger(__package__)  # "sentiment_hf.sweep", as log lines always read

_NEVER = 10**9  # eval/save "steps" that never come: the schedule callback decides instead


class SurplusTrial(Exception):
    """The study already holds ``n_trials`` finished or running trials: this one is not run."""


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


class SweepTrainer(SeededSamplingMixin, compat.HPSearchTrainer):
    """A Trainer whose trials are admitted against ``n_trials`` and report by evaluation index.

    ``plan`` is the sweep's plan; ``schedule`` the :class:`EvalSchedule` among ``callbacks``
    whose index the pruner sees. The other arguments are the Trainer's.
    """

    def __init__(self, *args: Any, plan: SweepPlan, schedule: EvalSchedule, **kwargs: Any) -> None:
        self.sweep_plan = plan
        self.sweep_schedule = schedule
        self.sweep_pruner = pruner_description(plan.cfg)
        super().__init__(*args, **kwargs)
        if plan.recipe.tracking.wandb:
            from transformers.integrations import WandbCallback

            self.pop_callback(WandbCallback)
            self.add_callback(_wandb_callback(plan.study_name))

    def train(self, resume_from_checkpoint: Any = None, trial: Any = None, **kwargs: Any) -> Any:
        if trial is None or not isinstance(trial, optuna.Trial):
            return super().train(
                resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs
            )
        study = trial.study
        n_trials = self.sweep_plan.cfg.n_trials
        mine = compat.storage_order(trial)
        older = [t for t in trials(study, TAKEN) if compat.storage_order(t) < mine]
        if len(older) >= n_trials:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise SurplusTrial(
                f"trial {trial.number} not run: {len(older)} trials of {n_trials} "
                "are already finished or running"
            )
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("pruner", self.sweep_pruner)
        remove_trial_dirs(study, self.sweep_plan.sweep_dir)
        try:
            return super().train(
                resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs
            )
        finally:
            if len(trials(study, (*FINISHED, TrialState.RUNNING))) >= n_trials:
                study.stop()  # the remaining trials are finished or held by other workers

    def objective_so_far(self, previous: float | None, value: float) -> float:
        """The last evaluation's value, or with ``sweep.objective: best`` the best so far."""
        if self.sweep_plan.cfg.objective == "best" and previous is not None:
            better = max if self.sweep_plan.direction == "maximize" else min
            return better(previous, value)
        return value

    def report_evaluation(self, trial: Any, value: float) -> None:
        """Report ``value`` at the evaluation's index; stop the trial if the pruner says so."""
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
def quiet_surplus() -> Iterator[None]:
    """While searching, a surplus trial is one log line, not a failure with a traceback."""
    logger = logging.getLogger(compat.OPTIMIZE_LOGGER)
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
            wandb = compat.callback_wandb(self)
            if wandb is not None and wandb.run is not None:
                wandb.config.update(
                    {"sweep": group, "trial_params": state.trial_params or {}},
                    allow_val_change=True,
                )

    return SweepWandbCallback()


def build_sweep_trainer(plan: SweepPlan) -> SweepTrainer:
    """The one Trainer that runs every trial this worker is given."""
    recipe = plan.recipe
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

    def model_init(trial: Any = None) -> Any:
        overrides = model_overrides(plan.cfg, trial) if isinstance(trial, optuna.Trial) else {}
        overrides = {**prepared.model_overrides, **overrides}
        return build_model(prepared.backbone_path, prepared.label_names, recipe.model, **overrides)

    schedule = EvalSchedule(plan.cfg.evals_per_epoch)
    return build_trainer(
        prepared,
        args,
        model_init=model_init,
        callbacks=[schedule],
        trainer_cls=partial(SweepTrainer, plan=plan, schedule=schedule),
    )


def finish_wandb(recipe: Recipe) -> None:
    """End the last trial's W&B run (the Trainer leaves it open)."""
    if not recipe.tracking.wandb:
        return
    import wandb

    if wandb.run is not None:
        wandb.finish()
