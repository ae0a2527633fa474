"""Hyperparameter search with Optuna through ``Trainer.hyperparameter_search``.

A recipe's ``sweep:`` section (:class:`~sentiment_hf.config.recipe.SweepConfig`) declares the search
space; the study lives in Optuna's storage (any SQLAlchemy URL, by default a SQLite file in the
sweep directory; PostgreSQL for workers on several machines, its URL best read from the
environment with ``sweep.storage: env:NAME``), so rerunning the same command continues it and
several processes started with the same command share it, on one machine or many. Nothing
here coordinates workers beyond that storage:

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

Modules: :mod:`~sentiment_hf.sweep.plan` (the recipe's sweep resolved once),
:mod:`~sentiment_hf.sweep.storage` (storage and study), :mod:`~sentiment_hf.sweep.space`
(search space, sampler, pruner), :mod:`~sentiment_hf.sweep.trainer` (trials inside the
Trainer), :mod:`~sentiment_hf.sweep.report` (trial table, ``best.yaml``, plots),
:mod:`~sentiment_hf.sweep.run` (:func:`sweep`) and :mod:`~sentiment_hf.sweep.compat` (the
private transformers and Optuna APIs used, in one place).
"""

from __future__ import annotations

from sentiment_hf.sweep.plan import (
    DEFAULT_SWEEP_RECIPE,
    METRICS,
    SweepPlan,
    objective_metric,
    storage_url,
    trial_dir_name,
)
from sentiment_hf.sweep.report import (
    BEST_RECIPE_FILE,
    SUMMARY_FILE,
    TRIALS_FILE,
    SweepResult,
    TrialRow,
    best_recipe,
    format_trials,
    summarize,
    write_plots,
)
from sentiment_hf.sweep.run import sweep
from sentiment_hf.sweep.space import make_pruner, make_sampler, pruner_description
from sentiment_hf.sweep.storage import (
    ENV_PREFIX,
    FINISHED,
    STUDY_ATTR,
    TAKEN,
    mask_url,
    open_storage,
    open_study,
    remove_trial_dirs,
    resolve_storage,
)
from sentiment_hf.sweep.trainer import EvalSchedule, SurplusTrial, SweepTrainer

__all__ = [
    "BEST_RECIPE_FILE",
    "DEFAULT_SWEEP_RECIPE",
    "ENV_PREFIX",
    "FINISHED",
    "METRICS",
    "STUDY_ATTR",
    "SUMMARY_FILE",
    "TAKEN",
    "TRIALS_FILE",
    "EvalSchedule",
    "SurplusTrial",
    "SweepPlan",
    "SweepResult",
    "SweepTrainer",
    "TrialRow",
    "best_recipe",
    "format_trials",
    "make_pruner",
    "make_sampler",
    "mask_url",
    "objective_metric",
    "open_storage",
    "open_study",
    "pruner_description",
    "remove_trial_dirs",
    "resolve_storage",
    "storage_url",
    "summarize",
    "sweep",
    "trial_dir_name",
    "write_plots",
]
