"""Long documents: accuracy and texts/s of each long-text policy on full-length reviews.

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/long_text.py RUN_DIR \\
        --data ../shared/data/imdb-reviews/reviews.csv --repeats 2

Every policy goes through the same :class:`sentiment_hf.Predictor` (tokenization, windows,
length-sorted batches, aggregation, the run's calibration and decision policy), so the figures
are end to end. A policy is written ``truncate``, ``window:AGGREGATE`` (windows of whole
sentences, the default ``cut``), ``window:AGGREGATE:tokens`` (overlapping token windows at the
default stride) or ``window:AGGREGATE:sSTRIDE`` (token windows at that stride, e.g.
``window:mean:s31``). Policies are timed interleaved, in a rotating order, over ``--repeats``
repetitions; the median and the range of texts/s are printed and saved as JSON. The run
directory is only read (its ONNX files are needed for ``--backend onnx|onnx-int8``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf import Predictor, SentimentError
from sentiment_hf.fileio import write_json
from sentiment_hf.hardware import device_info
from sentiment_hf.longtext import LongTextConfig, LongTextCounts

DEFAULT_POLICIES = (
    "truncate",
    "window:mean",
    "window:max",
    "window:mean:tokens",
    "window:mean:s31",
    "window:mean:s62",
)


def parse_policy(spec: str) -> LongTextConfig:
    """``truncate`` or ``window:AGGREGATE[:tokens|:sSTRIDE]`` as a :class:`LongTextConfig`."""
    parts = spec.split(":")
    if parts == ["truncate"]:
        return LongTextConfig(mode="truncate")
    if parts[0] != "window" or len(parts) not in (2, 3):
        raise SentimentError(f"policy {spec!r}: write truncate or window:mean[:tokens|:s48]")
    if len(parts) == 2:
        return LongTextConfig(mode="window", aggregate=parts[1])  # type: ignore[arg-type]
    stride = None if parts[2] == "tokens" else int(parts[2].removeprefix("s"))
    return LongTextConfig(mode="window", cut="tokens", aggregate=parts[1], stride=stride)  # type: ignore[arg-type]


def read_reviews(path: Path, labels: list[str], mapping: dict[str, str]) -> tuple[list[str], Any]:
    """Texts and label indices (in ``labels`` order) of a ``review``/``sentiment`` CSV."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    texts = [r["review"] for r in rows]
    y = np.array([labels.index(mapping.get(r["sentiment"], r["sentiment"])) for r in rows])
    return texts, y


def measure(
    model_dir: Path, data: Path, policies: list[str], repeats: int, backend: str, batch_size: int
) -> dict[str, Any]:
    """Accuracy (the run's policy) and texts/s of every long-text policy."""
    predictors = {
        spec: Predictor(
            model_dir, backend=backend, batch_size=batch_size, long_text=parse_policy(spec)
        )
        for spec in policies
    }
    first = next(iter(predictors.values()))
    mapping = {"positive": "pos", "negative": "neg"} if "pos" in first.labels else {}
    texts, y = read_reviews(data, first.labels, mapping)
    speeds: dict[str, list[float]] = {spec: [] for spec in policies}
    results: dict[str, dict[str, Any]] = {}
    for rep in range(repeats):
        order = policies[rep % len(policies) :] + policies[: rep % len(policies)]
        for spec in order:
            predictor = predictors[spec]
            counts = LongTextCounts()
            started = time.perf_counter()
            probs = predictor.policy.probabilities(predictor.predict_logits(texts, counts))
            speeds[spec].append(len(texts) / (time.perf_counter() - started))
            preds, _ = predictor.policy.decide(probs)
            results[spec] = {
                "accuracy": float((preds == y).mean()),
                "inputs": counts.inputs,
                "truncated": counts.truncated,
                "windowed": counts.windowed,
                "windows": counts.windows,
            }
            print(
                f"rep {rep + 1} {spec:>16}: acc {results[spec]['accuracy']:.4f} "
                f"{speeds[spec][-1]:.1f} texts/s",
                flush=True,
            )
    for spec in policies:
        results[spec]["texts_per_s_median"] = statistics.median(speeds[spec])
        results[spec]["texts_per_s_range"] = [min(speeds[spec]), max(speeds[spec])]
    return {
        "model_dir": str(model_dir),
        "data": str(data),
        "backend": backend,
        "device": device_info(),
        "max_length": first.max_length,
        "repeats": repeats,
        "policies": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="CSV with review,sentiment")
    parser.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/long_text.json"))
    args = parser.parse_args(argv)
    try:
        report = measure(
            args.model_dir, args.data, args.policies, args.repeats, args.backend, args.batch_size
        )
    except SentimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n| policy | accuracy | texts/s (median, range) | windowed | truncated | windows |")
    print("| --- | --- | --- | --- | --- | --- |")
    for spec, r in report["policies"].items():
        lo, hi = r["texts_per_s_range"]
        print(
            f"| {spec} | {r['accuracy'] * 100:.2f} % | {r['texts_per_s_median']:.1f} "
            f"({lo:.1f}-{hi:.1f}) | {r['windowed']} | {r['truncated']} | {r['windows']} |"
        )
    write_json(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
