"""Faithfulness of `sentiment explain`: ERASER comprehensiveness against random deletion.

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/faithfulness.py runs/base-1ep

For each of ``--samples`` (default 200) texts of the test split of the run's data (a seeded
sample), explain the prediction, delete the top 20 % of its *words* by attribution and measure
the drop of the explained label's calibrated probability. Words are the whitespace-separated
words the explanations are given in: ``round(0.2 * words)`` of them, at least one, only among
the words the model read; the rest are joined by single spaces. Compare with deleting as many
words at random (seeded, mean of ``--draws`` draws per text). A faithful explanation removes
much more probability than chance: target ratio >= 2x.

Every baseline x aggregation pair is measured on the same texts (``special``: [CLS] [PAD]...
[SEP]; ``pad``: [PAD] everywhere; ``sum``: signed sum of token attributions, top = most
positive; ``l2``: L2 norm, top = largest magnitude). Time per explanation is one text per call,
as ``POST /explain`` does (median and range). ``|outside|`` is the mean probability change the
words do not account for (on [CLS]/[SEP], plus the integral's error). Writes JSON (default
RUN_DIR/faithfulness.json) and prints a table.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf import Predictor, SentimentError
from sentiment_hf.data.load import load_splits
from sentiment_hf.fileio import write_json
from sentiment_hf.hardware import device_info
from sentiment_hf.inference.explain import (
    AGGREGATES,
    BASELINES,
    DEFAULT_STEPS,
    Explainer,
    Explanation,
    whitespace_words,
)
from sentiment_hf.rundir import RunDir
from sentiment_hf.training.manifest import package_versions

SHARE = 0.2
TARGET_RATIO = 2.0


def deletion_count(n_words: int, share: float = SHARE) -> int:
    """How many of ``n_words`` words deleting ``share`` of them removes (at least one)."""
    if n_words < 1:
        return 0
    return min(n_words, max(1, round(share * n_words)))


def delete_words(text: str, drop: set[int]) -> str:
    """``text`` without its whitespace words at indices ``drop`` (the rest joined by spaces)."""
    return " ".join(w for i, (w, _, _) in enumerate(whitespace_words(text)) if i not in drop)


def top_words(item: Explanation, share: float = SHARE) -> set[int]:
    """Indices of the ``share`` of words with the largest attributions (ties: earlier word)."""
    scores = np.array([w.attribution for w in item.words])
    k = deletion_count(len(scores), share)
    return {int(i) for i in np.argsort(-scores, kind="stable")[:k]}


def random_words(item: Explanation, rng: np.random.Generator, share: float = SHARE) -> set[int]:
    """As many word indices as :func:`top_words` deletes, drawn uniformly without replacement."""
    k = deletion_count(len(item.words), share)
    return {int(i) for i in rng.choice(len(item.words), size=k, replace=False)}


def comprehensiveness(
    predictor: Predictor,
    items: list[Explanation],
    share: float = SHARE,
    draws: int = 5,
    seed: int = 0,
) -> dict[str, float | None]:
    """Mean drop of the explained label's probability: top words deleted vs random words."""
    rng = np.random.default_rng(seed)
    targets = np.array([predictor.labels.index(item.target) for item in items])
    rows = np.arange(len(items))
    full = predictor.predict_proba([item.text for item in items])[rows, targets]
    top = [delete_words(item.text, top_words(item, share)) for item in items]
    top_drop = full - predictor.predict_proba(top)[rows, targets]
    random_drop = np.zeros(len(items))
    for _ in range(draws):
        texts = [delete_words(item.text, random_words(item, rng, share)) for item in items]
        random_drop += full - predictor.predict_proba(texts)[rows, targets]
    random_drop /= draws
    top_mean, random_mean = float(top_drop.mean()), float(random_drop.mean())
    return {
        "mean_drop_top": top_mean,
        "mean_drop_random": random_mean,
        # no ratio when random deletion does not lower the probability at all
        "ratio": top_mean / random_mean if random_mean > 0 else None,
    }


def outside_words(items: list[Explanation]) -> float:
    """Mean |score - baseline_score - sum of word attributions|: the change that the words do
    not account for (attribution on [CLS]/[SEP] plus the convergence error)."""
    gaps = [i.score - i.baseline_score - sum(w.attribution for w in i.words) for i in items]
    return float(np.mean(np.abs(gaps)))


def sample_texts(run: RunDir, samples: int) -> list[str]:
    """``samples`` texts of the run's test split (load_splits shuffles, seeded, then cuts)."""
    cfg = run.data_config()
    cfg.label_names = run.labels
    cfg.max_test_samples = samples
    return list(load_splits(cfg, splits=("test",)).splits["test"]["text"])


def run(
    model_dir: Path,
    samples: int,
    n_steps: int = DEFAULT_STEPS,
    baselines: tuple[str, ...] = BASELINES,
    aggregates: tuple[str, ...] = AGGREGATES,
    share: float = SHARE,
    draws: int = 5,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Measure every baseline x aggregation; returns the report that is printed and saved."""
    run_dir = RunDir.open(model_dir)
    texts = [t for t in sample_texts(run_dir, samples) if t.strip()]
    predictor = Predictor(run_dir, device=device)
    results = []
    for baseline in baselines:
        for aggregate in aggregates:
            explainer = Explainer(
                predictor, n_steps=n_steps, baseline=baseline, aggregate=aggregate
            )
            explainer.explain(texts[:1])  # warm-up
            items, seconds = [], []
            for text in texts:
                started = time.perf_counter()
                items.extend(explainer.explain([text]))
                seconds.append(time.perf_counter() - started)
            scores = comprehensiveness(predictor, items, share, draws, seed)
            results.append(
                {
                    "baseline": baseline,
                    "aggregate": aggregate,
                    **scores,
                    "mean_abs_delta": float(np.mean([abs(i.delta) for i in items])),
                    "mean_abs_outside_words": outside_words(items) if aggregate == "sum" else None,
                    "seconds_per_explanation": {
                        "median": statistics.median(seconds),
                        "min": min(seconds),
                        "max": max(seconds),
                    },
                }
            )
    return {
        "model_dir": str(model_dir),
        "split": "test",
        "samples": len(texts),
        "unit": "whitespace words",
        "share_deleted": share,
        "random_draws": draws,
        "seed": seed,
        "n_steps": n_steps,
        "target_ratio": TARGET_RATIO,
        "results": results,
        "device": device_info(),
        "versions": package_versions(),
    }


def print_report(report: dict[str, Any]) -> None:
    """The comparison as a table."""
    print(
        f"\n{report['model_dir']}: {report['samples']} test texts, top/random "
        f"{report['share_deleted']:.0%} of words deleted, n_steps={report['n_steps']}"
    )
    head = f"{'baseline':<9} {'agg':<4} {'drop top':>9} {'drop rand':>9} {'ratio':>6} "
    print(head + f"{'|delta|':>8} {'|outside|':>9} {'s/expl median (min-max)':>24}")
    for r in report["results"]:
        t = r["seconds_per_explanation"]
        ratio = f"{r['ratio']:>5.2f}x" if r["ratio"] is not None else "   n/a"
        outside = r["mean_abs_outside_words"]
        outside = f"{outside:>9.4f}" if outside is not None else f"{'-':>9}"
        print(
            f"{r['baseline']:<9} {r['aggregate']:<4} {r['mean_drop_top']:>9.4f} "
            f"{r['mean_drop_random']:>9.4f} {ratio} {r['mean_abs_delta']:>8.1e} {outside} "
            f"{t['median']:>9.3f} ({t['min']:.3f}-{t['max']:.3f})"
        )
    print(f"target: ratio >= {report['target_ratio']:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="a run directory written by `sentiment train`")
    parser.add_argument("--samples", type=int, default=200, help="test texts explained")
    parser.add_argument("--n-steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--baselines", nargs="+", default=list(BASELINES), choices=BASELINES)
    parser.add_argument("--aggregates", nargs="+", default=list(AGGREGATES), choices=AGGREGATES)
    parser.add_argument("--share", type=float, default=SHARE, help="share of words deleted")
    parser.add_argument("--draws", type=int, default=5, help="random deletions per text")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument(
        "--out", type=Path, help="JSON report (default MODEL_DIR/faithfulness.json)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        model_dir = RunDir.open(args.model_dir).path
        report = run(
            model_dir,
            args.samples,
            n_steps=args.n_steps,
            baselines=tuple(args.baselines),
            aggregates=tuple(args.aggregates),
            share=args.share,
            draws=args.draws,
            seed=args.seed,
            device=args.device,
        )
    except SentimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print_report(report)
    out = write_json(args.out or model_dir / "faithfulness.json", report)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
