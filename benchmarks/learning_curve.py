"""Learning curve: the default recipe against a plain Trainer baseline as the data grows (issue 14).

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/learning_curve.py \\
        --data ../shared/data/rt-polarity --out runs/learning_curve.json

Every point is one training of ``recipes/base.yaml`` with ``data.max_train_samples=N`` (the
train split shuffled with the run's seed, then cut: each seed sees another subset, the same one
for every arm) and ``training.seed=S``; validation and test are always the whole splits.
Arms (``--arms``):

- ``recipe``: ``recipes/base.yaml`` as shipped.
- ``recipe-min-steps``: the same with ``training.min_steps=250``: below 1,985 sentences each
  epoch repeats the data until the run takes 250 optimizer steps.
- ``recipe-batch``: the other way to reach 250 steps: smaller batches (halved down to 8) with
  the learning rate scaled by sqrt(batch / 32), the data seen once per epoch.
- ``baseline``: a plain ``transformers.Trainer``: its defaults (3 epochs, batch 8, linear decay
  without warm-up, no weight decay, the backbone's dropout, the final weights) at lr 5e-5, with
  dynamic padding (``DataCollatorWithPadding``), fp32, random batches.

The data check and the calibration are off for every arm (neither changes the weights). Each
finished point is written to ``--out`` at once, and a rerun skips the points already there, so
the script can be stopped and continued. Run directories are deleted after their metrics are
read (``--keep-runs`` keeps them). ``--plot`` only redraws the PNG and the table from ``--out``.

``--shard I/N`` names worker I of N: it writes ``OUT.shardI.json`` and takes the next missing
point no other worker has claimed (a file under ``WORK/claims``; delete that folder before
restarting stopped workers). N such processes with ``OMP_NUM_THREADS=1`` share the cores (their
wall times are then contended). Every run of the script merges the shard files into ``--out``.
``--import RUN_DIR ...`` adds finished ``recipe`` runs on the whole split (their seed and
metrics read from the run directory) instead of training them again.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ALL = 0  # --sizes 0: the whole training split
MIN_STEPS = 250  # what the recipe-min-steps and recipe-batch arms reach on small data

ARMS: dict[str, list[str]] = {
    "recipe": [],
    "recipe-min-steps": [f"training.min_steps={MIN_STEPS}"],
    "recipe-batch": [],  # small_batch(size)
    "baseline": [
        "training.learning_rate=5e-5",
        "training.num_train_epochs=3",
        "training.per_device_train_batch_size=8",
        "training.warmup_steps=0",
        "training.weight_decay=0.0",
        "training.min_steps=null",
        "training.train_sampling_strategy=random",
        "training.bf16=false",
        'training.eval_strategy="no"',  # quoted: YAML reads no as false
        'training.save_strategy="no"',
        "training.load_best_model_at_end=false",
        "model.dropout=null",
        "early_stopping.patience=null",
    ],
}
SAME_AS_RECIPE_UNLESS_SHORT = ("recipe-min-steps", "recipe-batch")
COMMON = ["data.check=skip", "policy.calibrate=false"]


def small_batch(size: int, min_steps: int = MIN_STEPS, epochs: int = 4) -> list[str]:
    """``recipe-batch``: instead of repeating the data, halve the batch (not below 8) until the
    recipe's epochs give ``min_steps`` steps, with the learning rate scaled by
    sqrt(batch / 32)."""
    batch = 32
    while size and batch > 8 and epochs * -(-size // batch) < min_steps:
        batch //= 2
    return [
        "training.min_steps=null",
        f"training.per_device_train_batch_size={batch}",
        f"training.learning_rate={1.3e-4 * (batch / 32) ** 0.5:.3g}",
    ]


def key(arm: str, size: int, seed: int) -> str:
    """The JSON key of one point."""
    return f"{arm}/{size or 'all'}/s{seed}"


@functools.cache
def _recipe_args(recipe_path: Path) -> Any:
    """The recipe's TrainingArguments on this machine (built once per recipe file)."""
    from sentiment_hf.config.recipe import load_recipe
    from sentiment_hf.training.train import build_training_args

    return build_training_args(load_recipe(recipe_path))


def min_steps_active(recipe_path: Path, size: int, min_steps: int = MIN_STEPS) -> bool:
    """Whether ``min_steps`` lengthens the recipe's run on ``size`` sentences (if not, the
    ``recipe-min-steps`` and ``recipe-batch`` arms train as ``recipe`` does and are not run):
    the step count of training itself (``repeats_for_min_steps``)."""
    from sentiment_hf.training.train import repeats_for_min_steps

    return bool(size) and repeats_for_min_steps(_recipe_args(recipe_path), size, min_steps) > 1


def train_point(recipe_path: Path, data: Path, arm: str, size: int, seed: int, work: Path) -> dict:
    """Train one point in this process and return its figures."""
    from sentiment_hf.config.recipe import load_recipe
    from sentiment_hf.training.train import train

    run_dir = work / key(arm, size, seed).replace("/", "-")
    overrides = [
        f"data.source={data}",
        f"training.seed={seed}",
        f"training.output_dir={run_dir}",
        *COMMON,
        *ARMS[arm],
        *(small_batch(size) if arm == "recipe-batch" else []),
    ]
    if size:
        overrides.append(f"data.max_train_samples={size}")
    started = time.time()
    result = train(load_recipe(recipe_path, overrides), overwrite=True)
    wall = time.time() - started
    m = result.metrics
    return {
        "arm": arm,
        "size": size,
        "seed": seed,
        "train_examples": result.manifest.get("split_sizes", {}).get("train"),
        "validation_accuracy": m["eval_accuracy"],
        "test_accuracy": m["test_accuracy"],
        "test_f1": m.get("test_f1"),
        "optimizer_steps": int(m["train_global_step"]),
        "train_repeats": result.manifest.get("train_repeats", 1),
        "wall_s": round(wall, 1),
        "overrides": overrides,
        # what the machine changed, e.g. bf16 off on a CPU without native bf16
        "effective_changes": result.manifest.get("effective_changes", []),
    }


def summarise(points: dict[str, dict]) -> list[dict[str, Any]]:
    """Mean and sd of test accuracy per (arm, size)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for p in points.values():
        groups.setdefault((p["arm"], p["size"]), []).append(p)
    rows = []
    for (arm, size), ps in sorted(groups.items(), key=lambda kv: (kv[0][1] or 10**9, kv[0][0])):
        accs = [p["test_accuracy"] for p in ps]
        rows.append(
            {
                "arm": arm,
                "size": size,
                "train_examples": ps[0].get("train_examples"),
                "seeds": sorted(p["seed"] for p in ps),
                "test_accuracy": accs,
                "mean": statistics.fmean(accs),
                "sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "validation_mean": statistics.fmean(p["validation_accuracy"] for p in ps),
                "steps": sorted({p["optimizer_steps"] for p in ps}),
                "wall_s_mean": statistics.fmean(p["wall_s"] for p in ps),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table of docs/results.md."""
    lines = [
        "| train sentences | arm | seeds | test acc per seed | mean ± sd | val mean | steps "
        "| wall |",
        "| ---: | --- | --- | --- | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        per_seed = ", ".join(f"{a * 100:.2f}" for a in r["test_accuracy"])
        lines.append(
            f"| {r['train_examples'] or r['size']} | {r['arm']} | {len(r['seeds'])} | {per_seed} "
            f"| {r['mean'] * 100:.2f} ± {r['sd'] * 100:.2f} | {r['validation_mean'] * 100:.2f} "
            f"| {'/'.join(map(str, r['steps']))} | {r['wall_s_mean'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Test accuracy against training sentences (log x), mean ± sd over the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in sorted({r["arm"] for r in rows}):
        rs = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["train_examples"] or 0)
        xs = [r["train_examples"] for r in rs]
        ax.errorbar(
            xs,
            [r["mean"] * 100 for r in rs],
            yerr=[r["sd"] * 100 for r in rs],
            marker="o",
            capsize=3,
            label=f"{arm} ({'/'.join(str(len(r['seeds'])) for r in rs)} seeds)",
        )
    ax.set_xscale("log")
    sizes = sorted({r["train_examples"] for r in rows if r["train_examples"]})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training sentences (rt-polarity)")
    ax.set_ylabel("test accuracy, % (mean ± sd over seeds)")
    ax.set_title("Learning curve: all-MiniLM-L6-v2 on Rotten Tomatoes")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def import_run(run_dir: Path) -> dict:
    """A finished run directory of the default recipe on the whole split, as a point."""
    import yaml

    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    m = json.loads((run_dir / "metrics.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {
        "arm": "recipe",
        "size": ALL,
        "seed": recipe["training"]["seed"],
        "train_examples": manifest["split_sizes"]["train"],
        "validation_accuracy": m["eval_accuracy"],
        "test_accuracy": m["test_accuracy"],
        "test_f1": m.get("test_f1"),
        "optimizer_steps": int(m["train_global_step"]),
        "train_repeats": manifest.get("train_repeats", 1),
        "wall_s": round(manifest.get("duration_s") or manifest.get("train_runtime_s") or 0, 1),
        "imported_from": str(run_dir),
    }


def claim(path: Path) -> bool:
    """Take a point for this worker; False if another worker took it first."""
    import os

    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def merged(out: Path) -> dict[str, dict]:
    """The points in ``out`` and its shard files."""
    points: dict[str, dict] = json.loads(out.read_text()) if out.exists() else {}
    for shard in sorted(out.parent.glob(f"{out.stem}.shard*.json")):
        points.update(json.loads(shard.read_text()))
    return points


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="the rt-polarity folder")
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "base.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/learning_curve.json"))
    parser.add_argument("--png", type=Path, default=None, help="default: --out with .png")
    parser.add_argument("--work", type=Path, default=Path("runs/learning_curve"))
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000], help="0 = all"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 13])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--keep-runs", action="store_true")
    parser.add_argument("--shard", default="0/1", help="I/N: worker I of N (see above)")
    parser.add_argument("--import", dest="imports", type=Path, nargs="*", default=[])
    parser.add_argument("--plot", action="store_true", help="only redraw from --out")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train the missing points (size-major, so the cheap sizes have every seed first), then
    report."""
    args = parse_args(argv)
    index, count = (int(x) for x in args.shard.split("/"))
    points = merged(args.out)
    for run_dir in args.imports:
        p = import_run(run_dir)
        points[key("recipe", ALL, p["seed"])] = p
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(points, indent=1))
    shard_out = args.out.with_name(f"{args.out.stem}.shard{index}.json") if count > 1 else args.out
    mine = json.loads(shard_out.read_text()) if shard_out.exists() else {}
    if not args.plot:
        if not args.data.is_dir():
            print(f"--data {args.data}: no such folder (the rt-polarity files)", file=sys.stderr)
            return 2
        todo = [
            (arm, size, seed)
            for size in args.sizes
            for seed in args.seeds
            for arm in args.arms
            if key(arm, size, seed) not in points
            and not (arm in SAME_AS_RECIPE_UNLESS_SHORT and not min_steps_active(args.recipe, size))
        ]
        claims = args.work / "claims"
        claims.mkdir(parents=True, exist_ok=True)
        for arm, size, seed in todo:
            k = key(arm, size, seed)
            if not claim(claims / k.replace("/", "-")):
                continue  # another worker has it
            print(f"== {k}", flush=True)
            mine[k] = points[k] = train_point(
                args.recipe, args.data.resolve(), arm, size, seed, args.work
            )
            print(json.dumps(points[k]), flush=True)
            shard_out.write_text(json.dumps(mine, indent=1))
            if not args.keep_runs:
                shutil.rmtree(args.work / k.replace("/", "-"), ignore_errors=True)
        points = merged(args.out)
    rows = summarise(points)
    plot(rows, args.png or args.out.with_suffix(".png"))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
