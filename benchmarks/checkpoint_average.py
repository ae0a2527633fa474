"""Checkpoint averaging: does the mean of a run's last K epoch checkpoints beat its own model?

    uv run python benchmarks/checkpoint_average.py RUN_DIR [RUN_DIR ...] \\
        --data ../shared/data/rt-polarity --out runs/checkpoint_average.json

For each finished run directory (``sentiment train`` with ``save_total_limit >= K``), the weights
of its last ``--last`` checkpoints are averaged (float32 mean, every tensor) into a copy of the
run under ``--work``, and both the run's own model and the average are scored on the validation
and test splits of the run's recipe (argmax, through
:class:`sentiment_hf.inference.predictor.Predictor`).
Nothing is trained. Decide on the validation column; the test column is there to report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def average_checkpoints(run_dir: Path, dest: Path, last: int) -> list[str]:
    """Write ``dest``: ``run_dir`` with its model replaced by the mean of its last checkpoints."""
    import torch
    from safetensors.torch import load_file, save_file

    found = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if len(found) < last:
        raise SystemExit(f"{run_dir}: {len(found)} checkpoints, --last {last} needs more")
    chosen = found[-last:]
    states = [load_file(str(c / "model.safetensors")) for c in chosen]
    mean = {
        k: (sum(s[k].to(torch.float32) for s in states) / last).to(states[0][k].dtype)
        for k in states[0]
    }
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("checkpoint-*"))
    save_file(mean, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return [c.name for c in chosen]


def accuracies(run_dir: Path, splits: dict) -> dict[str, float]:
    """Argmax accuracy of a run directory's model on each split."""
    from sentiment_hf.inference.predictor import Predictor

    predictor = Predictor(run_dir)
    out = {}
    for name, ds in splits.items():
        probs = predictor.predict_proba(list(ds["text"]))
        out[name] = float(np.mean(np.argmax(probs, axis=1) == np.asarray(ds["label"])))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Score each run and its checkpoint average; print a table, write ``--out``."""
    from sentiment_hf.config.recipe import load_recipe
    from sentiment_hf.data.load import load_splits

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--data", help="data.source to score on (default: the run's recipe)")
    parser.add_argument("--last", type=int, default=2, help="how many checkpoints to average")
    parser.add_argument("--work", type=Path, default=Path("runs/checkpoint_average"))
    parser.add_argument("--out", type=Path, default=Path("runs/checkpoint_average.json"))
    args = parser.parse_args(argv)
    report = {}
    print("| run | checkpoints | val: own → average | test: own → average |")
    print("| --- | --- | --- | --- |")
    for run_dir in args.runs:
        recipe = load_recipe(
            run_dir / "recipe.yaml", [f"data.source={args.data}"] if args.data else []
        )
        data = load_splits(recipe.data, seed=recipe.training.get("seed", 42))
        splits = {k: data.splits[k] for k in ("validation", "test")}
        dest = args.work / f"{run_dir.name}-avg{args.last}"
        chosen = average_checkpoints(run_dir, dest, args.last)
        own, avg = accuracies(run_dir, splits), accuracies(dest, splits)
        report[str(run_dir)] = {"checkpoints": chosen, "own": own, "average": avg}
        print(
            f"| {run_dir.name} | {', '.join(chosen)} | {own['validation'] * 100:.2f} → "
            f"{avg['validation'] * 100:.2f} | {own['test'] * 100:.2f} → {avg['test'] * 100:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
