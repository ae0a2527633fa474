"""Imbalance: rt-polarity with the positives cut to 10 %, trained without and with class weights.

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/imbalance.py \
        --out runs/imbalance --seeds 42

For each seed: the raw Cornell rt-polarity files are read with the hub's 80/10/10 split
(:func:`sentiment_hf.data.load.read_rt_polarity`); in the TRAIN and the VALIDATION split a seeded
random 10 % of the positives is kept (numpy ``default_rng(seed)``, without replacement; every
negative stays), the TEST split is left untouched (533 / 533). The splits are written as
``{split}.csv`` and ``recipes/base.yaml`` is trained on them twice, unchanged except for
``training.output_dir``, the seed, ``training.class_weights`` (``null``, then ``auto``) and
the epochs (``--epochs``, default 1 instead of the recipe's 4 to fit the shared 2-core CPU).
Each run is then scored on test by :func:`sentiment_hf.evaluate_model` (argmax after the run's
calibration temperature): accuracy, macro F1, the per-class recall and F1, and train wall time.
A Markdown table goes to stdout, everything to ``OUT/imbalance.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEEP = 0.10
MINORITY = "pos"


def find_rt_polarity(start: Path = REPO) -> Path:
    """``shared/data/rt-polarity`` beside the checkout or above it."""
    for base in (start, *start.parents):
        candidate = base / "shared" / "data" / "rt-polarity"
        if (candidate / "rt-polarity.pos").is_file():
            return candidate
    sys.exit("error: shared/data/rt-polarity not found beside the checkout; pass --rt-dir")


def build_data(rt_dir: Path, out: Path, seed: int, keep: float = KEEP) -> dict[str, dict]:
    """Write train/validation (positives cut to ``keep``) and test (untouched) as CSV."""
    from sentiment_hf.data.load import read_rt_polarity

    dd = read_rt_polarity(rt_dir)
    names = dd["train"].features["label"].names
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "validation", "test"):
        texts, labels = dd[split]["text"], np.asarray(dd[split]["label"])
        rows = np.arange(len(labels))
        if split != "test":
            pos = rows[labels == names.index(MINORITY)]
            kept = rng.choice(pos, size=round(len(pos) * keep), replace=False)
            rows = np.sort(np.concatenate([rows[labels != names.index(MINORITY)], kept]))
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows([texts[i], names[labels[i]]] for i in rows)
        counts[split] = {n: int((labels[rows] == i).sum()) for i, n in enumerate(names)}
    return counts


def run_one(
    data_dir: Path, run_dir: Path, seed: int, weights: str | None, extra: list[str] = ()
) -> dict[str, Any]:
    """Train recipes/base.yaml on ``data_dir`` and evaluate the run on test."""
    from sentiment_hf import evaluate_model, load_recipe, train

    recipe = load_recipe(
        REPO / "recipes" / "base.yaml",
        [
            f"data.source={data_dir}",
            f"training.output_dir={run_dir}",
            f"training.seed={seed}",
            f"training.class_weights={'null' if weights is None else weights}",
            *extra,
        ],
    )
    started = time.perf_counter()
    result = train(recipe, overwrite=True)
    wall = time.perf_counter() - started
    report = evaluate_model(run_dir, split="test")
    m = report.metrics
    per_class = m["test_per_class"]
    return {
        "seed": seed,
        "overrides": list(extra),
        "class_weights": weights,
        "weights_used": result.manifest.get("class_weights"),
        "train_wall_s": round(wall, 1),
        "test_accuracy": m["test_accuracy"],
        "test_f1_macro": m["test_f1_macro"],
        "test_recall": {k: v["recall"] for k, v in per_class.items()},
        "test_f1": {k: v["f1"] for k, v in per_class.items()},
        "val_f1_macro": result.metrics.get("eval_f1_macro"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "imbalance")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--rt-dir", type=Path, default=None)
    parser.add_argument(
        "--epochs",
        type=float,
        default=1.0,
        help="training.num_train_epochs (default 1: the recipe's 4 would take over 15 min per "
        "run on the shared 2-core CPU; 0 keeps the recipe's)",
    )
    parser.add_argument(
        "--override", action="append", default=[], help="extra recipe KEY=VALUE (say so)"
    )
    args = parser.parse_args(argv)
    if args.epochs:
        args.override = [f"training.num_train_epochs={args.epochs:g}", *args.override]
    rt_dir = args.rt_dir or find_rt_polarity()
    rows, counts = [], {}
    for seed in args.seeds:
        data_dir = args.out / f"data-seed{seed}"
        counts[seed] = build_data(rt_dir, data_dir, seed)
        print(f"seed {seed}: class counts {counts[seed]}", flush=True)
        for weights in (None, "auto"):
            name = f"seed{seed}-{weights or 'unweighted'}"
            rows.append(run_one(data_dir, args.out / name, seed, weights, args.override))
            print(json.dumps(rows[-1]), flush=True)
            (args.out / "imbalance.json").write_text(
                json.dumps({"counts": counts, "runs": rows}, indent=2), encoding="utf-8"
            )
    header = "| seed | class_weights | macro F1 | pos recall | neg recall | accuracy | train s |"
    print("\n" + header)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['seed']} | {r['class_weights'] or 'none'} | {r['test_f1_macro']:.4f} | "
            f"{r['test_recall'][MINORITY]:.4f} | {r['test_recall']['neg']:.4f} | "
            f"{r['test_accuracy']:.4f} | {r['train_wall_s']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
