"""Short human tables for ``eval``, ``calibrate`` and ``export`` (``--json`` prints the full
JSON instead). Each function returns the text; the command echoes it."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from sentiment_hf.tasks.calibration import COVERAGES, coverage_key

#: Text width of the tables (fits an 80-column terminal with room to spare).
WIDTH = 88


def _render(*items: Any) -> str:
    console = Console(file=io.StringIO(), width=WIDTH, color_system=None, highlight=False)
    for item in items:
        console.print(item, soft_wrap=isinstance(item, str))  # a line of text is never wrapped
    return console.file.getvalue().rstrip("\n")


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(value: Any) -> str:
    return f"{value[0]:.4f} to {value[1]:.4f}" if value else ""


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    return table


def _before_after(
    table: Table, metrics: Mapping[str, Any], rows: Iterable[tuple[str, str]]
) -> None:
    """Rows ``label | before | after`` for the keys ``{key}_uncalibrated`` / ``{key}``."""
    for label, key in rows:
        if key in metrics:
            table.add_row(label, _num(metrics.get(f"{key}_uncalibrated")), _num(metrics[key]))


def eval_summary(metrics: Mapping[str, Any], split: str, title: str) -> str:
    """The headline figures of one evaluation: quality with 95 % intervals, calibration,
    selective accuracy and what the long-text rule did."""
    quality = _table(f"{split}: {metrics.get(f'{split}_samples', '?')} texts", "value", "95 % CI")
    for label, key in (("accuracy", "accuracy"), ("F1", "f1"), ("macro F1", "f1_macro")):
        full = f"{split}_{key}"
        if full in metrics and isinstance(metrics[full], int | float):
            quality.add_row(label, _num(metrics[full]), _interval(metrics.get(f"{full}_ci95")))
    if metrics.get(f"{split}_unbalanced"):
        for name, value in (metrics.get(f"{split}_recall_per_class") or {}).items():
            quality.add_row(f"recall of {name}", _num(value), "")
    for share in COVERAGES:
        key = f"{split}_{coverage_key(share)}"
        if key in metrics:
            label = f"accuracy of the {round(share * 100)} % most confident"
            quality.add_row(label, _num(metrics[key]), "")
    if f"{split}_coverage" in metrics:
        quality.add_row("answered (min_confidence)", _num(metrics[f"{split}_coverage"]), "")
        quality.add_row("accuracy when answered", _num(metrics[f"{split}_answered_accuracy"]), "")
    calibration = _table("calibration", "uncalibrated", "calibrated")
    _before_after(calibration, metrics, [("ECE", f"{split}_ece"), ("NLL", f"{split}_nll")])
    capped = metrics.get(f"{split}_inputs_capped", 0)
    notes = (
        f"long texts: {metrics.get(f'{split}_inputs_windowed', 0)} windowed, "
        f"{metrics.get(f'{split}_inputs_truncated', 0)} truncated, "
        f"{capped} read up to the window cap"
    )
    return _render(title, quality, calibration, notes)


def calibrate_summary(policy: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """What was fitted on what, the decision rule, and calibration before/after."""
    fitted = policy.get("fitted_on") or {}
    head = (
        f"fitted on {fitted.get('samples', '?')} {fitted.get('split', 'validation')} rows of "
        f"{fitted.get('source', 'the run data')} (objective: {fitted.get('objective', '?')})"
    )
    rule = [f"temperature {_num(policy.get('temperature'), 3)}"]
    if policy.get("threshold") is not None:
        rule.append(f"threshold {policy['threshold']:.2f} ({policy.get('threshold_metric')})")
    if policy.get("thresholds"):
        rule.append(f"per-label thresholds ({policy.get('threshold_metric')})")
    if policy.get("min_confidence") is not None:
        rule.append(f"answers 'uncertain' below {policy['min_confidence']:.2f}")
    table = _table("", "before", "after")
    for prefix, name in (("eval", "validation"), ("test", "test")):
        _before_after(
            table,
            metrics,
            [(f"{name} ECE", f"{prefix}_ece"), (f"{name} NLL", f"{prefix}_nll")],
        )
    return _render(head, "policy: " + ", ".join(rule), table)


def export_summary(parity: Mapping[str, Any]) -> str:
    """Per exported backend: agreement with PyTorch on the parity texts and the logit gap."""
    table = _table(
        f"parity on {parity.get('samples', '?')} {parity.get('split', '')} texts",
        "accuracy",
        "same label as torch",
        "max |Δ logit|",
    )
    table.add_row("torch", _num(parity.get("torch", {}).get("accuracy")), "", "")
    for name in ("onnx", "onnx-int8"):
        if name in parity:
            row = parity[name]
            table.add_row(
                f"{name} ({row.get('file')})",
                _num(row.get("accuracy")),
                f"{row.get('argmax_agreement_pct', 0):.2f} %",
                f"{row.get('max_abs_logit_diff', 0):.2e}",
            )
    chosen = parity.get("quantization", {}).get("weights")
    return _render(table, *([f"int8 weights: {chosen}"] if chosen else []))
