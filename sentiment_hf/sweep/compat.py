"""Every private transformers and Optuna API the sweep relies on, in one file.

Checked against transformers 5.24.0 and optuna 5.0.0. The rest of :mod:`sentiment_hf.sweep`
uses only public names; when either library is upgraded, re-read these uses against its source:

* ``Trainer._report_to_hp_search`` (transformers) — overridden by :class:`HPSearchTrainer`, with
  the attributes ``hyperparameter_search`` sets on the Trainer for it (``hp_search_backend``,
  ``compute_objective``, ``objective``);
* ``FrozenTrial._trial_id`` / ``Trial._trial_id`` (optuna) — :func:`storage_order`;
* ``WandbCallback._wandb`` (transformers) — :func:`callback_wandb`;
* the logger of the internal module ``optuna.study._optimize`` — :data:`OPTIMIZE_LOGGER`;
* the texts of two ``ValueError``\\ s raised inside ``hyperparameter_search`` (optuna's
  ``Study.tell`` and ``Study.best_trial``) — :func:`is_tell_on_finished_trial`,
  :func:`is_no_complete_trial`.
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer

#: Optuna logs a trial that raised an exception listed in ``catch`` (a failure, with traceback)
#: on the logger of its internal module ``optuna.study._optimize``.
OPTIMIZE_LOGGER = "optuna.study._optimize"


class HPSearchTrainer(Trainer):
    """A Trainer whose report after each evaluation of a search trial goes to two public hooks.

    transformers reports every evaluation to Optuna keyed by ``global_step`` and keeps the last
    value as the trial's objective; subclasses decide the objective (:meth:`objective_so_far`)
    and what the trial receives (:meth:`report_evaluation`) instead.
    """

    def objective_so_far(self, previous: float | None, value: float) -> float:
        """The trial's objective after an evaluation gave ``value`` (``previous``: before it)."""
        return value

    def report_evaluation(self, trial: Any, value: float) -> None:
        """Tell the search about one evaluation of ``trial`` (may raise ``TrialPruned``)."""

    # Private hook: Trainer._evaluate calls it after every evaluation of a search trial.
    def _report_to_hp_search(self, trial: Any, step: int, metrics: dict[str, float]) -> None:
        # hp_search_backend is set by hyperparameter_search() only: None outside a search.
        if self.hp_search_backend is None or trial is None:
            return
        # compute_objective is the function hyperparameter_search() was given.
        value = self.compute_objective(metrics)
        # objective is what run_hp_search_optuna returns to Optuna as the trial's value.
        self.objective = self.objective_so_far(self.objective, value)
        self.report_evaluation(trial, value)


def storage_order(trial: Any) -> int:
    """The order in which the storage created ``trial``, the same for every worker."""
    return trial._trial_id  # the storage's primary key; Optuna has no public accessor for it


def callback_wandb(callback: Any) -> Any:
    """The ``wandb`` module a ``WandbCallback`` imported, or None where it is not installed."""
    return callback._wandb  # set in WandbCallback.__init__; no public accessor


def is_tell_on_finished_trial(exc: ValueError) -> bool:
    """Optuna's ``Study.tell`` on a trial that another worker has already finished (failed)."""
    return "Cannot tell a" in str(exc)  # optuna/study/_tell.py: "Cannot tell a FAIL trial."


def is_no_complete_trial(exc: ValueError) -> bool:
    """``Study.best_trial`` read by ``hyperparameter_search`` when no trial completed."""
    return "No trials are completed yet" in str(exc)  # optuna/storages/_base.py: best trial
