"""Calibrated probabilities from every backend, compared on the run's test split.

    uv run sentiment export RUN --quantize int8
    uv run python benchmarks/calibration_parity.py RUN [--out RUN/calibration_parity.json]

For each backend (torch, onnx, onnx-int8) the run's decision policy turns logits into
probabilities; the report gives the max and mean |p_backend - p_torch| over the whole test
split, the argmax agreement with torch, and the test calibration (NLL, Brier, 10-bin ECE) of
each backend before and after the stored temperature.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.data.load import load_splits
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_json
from sentiment_hf.inference.predictor import BACKENDS, Predictor
from sentiment_hf.rundir import RunDir
from sentiment_hf.tasks.calibration import calibration_metrics, softmax


def compare(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """The parity and calibration report of every backend on ``split``."""
    run = RunDir.open(run_dir)
    cfg = run.data_config()
    cfg.label_names = run.labels
    data = load_splits(cfg, splits=(split,)).splits[split]
    texts, labels = data["text"], np.asarray(data["label"])
    report: dict[str, Any] = {
        "run": str(run.path),
        "split": split,
        "samples": len(texts),
        "temperature": run.policy.temperature,
    }
    reference = None
    for name in BACKENDS:
        logits = Predictor(run, backend=name, device="cpu").predict_logits(texts)
        probs = run.policy.probabilities(logits)
        row: dict[str, Any] = {
            "uncalibrated": calibration_metrics(softmax(logits), labels),
            "calibrated": calibration_metrics(probs, labels),
        }
        if reference is None:
            reference = probs
        else:
            diff = np.abs(probs - reference)
            row["max_abs_prob_diff"] = float(diff.max())
            row["mean_abs_prob_diff"] = float(diff.mean())
            row["argmax_agreement"] = float((probs.argmax(1) == reference.argmax(1)).mean())
        report[name] = row
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "run_dir", type=Path, help="an exported run (sentiment export --quantize int8)"
    )
    parser.add_argument("--split", default="test", help="split of the run's data (default test)")
    parser.add_argument(
        "--out", type=Path, help="JSON report (default RUN/calibration_parity.json)"
    )
    args = parser.parse_args()
    try:
        report = compare(args.run_dir, args.split)
    except SentimentError as exc:
        raise SystemExit(f"error: {exc}") from None
    write_json(args.out or args.run_dir / "calibration_parity.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
