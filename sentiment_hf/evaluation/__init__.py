"""Evaluation: evaluate a run, fit its decision policy, plots and the HTML report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiment_hf.lazy import lazy_getattr

if TYPE_CHECKING:
    from sentiment_hf.evaluation.calibrate import fit_policy
    from sentiment_hf.evaluation.evaluate import EvalReport, evaluate_model

__all__ = ["EvalReport", "evaluate_model", "fit_policy"]

__getattr__ = lazy_getattr(
    __name__, {"EvalReport": "evaluate", "evaluate_model": "evaluate", "fit_policy": "calibrate"}
)
