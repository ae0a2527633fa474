"""The task a run solves: single-label (one class per text, softmax) or multi-label (any subset
of the labels, one sigmoid each). A run's task is read once, from ``config.json``'s
``problem_type`` (:func:`task_for`), or from the data (:func:`task_of_data`); every stage asks
the task instead of branching on a flag.

What differs between the two lives in the :class:`~sentiment_hf.tasks.base.Task` methods: the
model's ``problem_type`` (and so its loss), the labels' encoding as arrays, the Trainer's
``compute_metrics``, the identity and the fitted decision policy, decisions, the evaluation's
figures, plots and mistakes, and the columns a prediction file carries.
"""

from __future__ import annotations

from sentiment_hf.tasks.base import Task
from sentiment_hf.tasks.label_sets import MULTI_LABEL
from sentiment_hf.tasks.multi_label import MultiLabel
from sentiment_hf.tasks.single_label import SingleLabel

SINGLE_LABEL = SingleLabel()
MULTI_LABEL_TASK = MultiLabel()


def task_for(problem_type: str | None) -> Task:
    """The task of a model whose ``config.json`` says ``problem_type``."""
    return MULTI_LABEL_TASK if problem_type == MULTI_LABEL else SINGLE_LABEL


def task_of_data(multi_label: bool) -> Task:
    """The task of data whose labels are (``multi_label``) lists, or single classes."""
    return MULTI_LABEL_TASK if multi_label else SINGLE_LABEL
