"""Inference throughput and accuracy: torch fp32 vs ONNX fp32 vs ONNX int8, in one run.

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/inference.py runs/base-1ep

Exports ``model.onnx`` / ``model.int8.onnx`` first when they are missing. Every backend goes
through the same :class:`sentiment_hf.Predictor` (tokenization, length-sorted batches, softmax)
so the figures are end-to-end samples/s. Backends are timed interleaved, in a rotating order,
over several repetitions; medians and ratios against torch fp32 measured in the same run are
printed and saved as JSON. Accuracy is on the whole real RT test split.

Target (issues 4, 16): ONNX int8 >= 3x torch fp32 samples/s at batch 32, <= 0.5 point accuracy
loss. The report records the CPU's speed flags (AVX-512, VNNI, AMX): int8 speed depends on them.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf import Predictor, SentimentError
from sentiment_hf.export.onnx import _test_split, export_onnx
from sentiment_hf.export.quantize import INT8_WEIGHTS
from sentiment_hf.fileio import write_json
from sentiment_hf.hardware import device_info, physical_cores
from sentiment_hf.rundir import RunDir
from sentiment_hf.training.manifest import package_versions

BACKENDS = ("torch", "onnx", "onnx-int8")
TARGET_SPEEDUP = 3.0
TARGET_MAX_LOSS_POINTS = 0.5


def _time(predictor: Predictor, texts: list[str], batch_size: int) -> float:
    predictor.batch_size = batch_size
    started = time.perf_counter()
    predictor.predict_proba(texts)
    return len(texts) / (time.perf_counter() - started)


def run(
    model_dir: Path,
    repeats: int,
    batch_sizes: list[int],
    batch1_samples: int,
    quantize_opts: dict[str, Any],
    reexport: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Measure every backend; returns the report that is printed and saved."""
    run_dir = RunDir.open(model_dir)
    missing = not run_dir.onnx_path().is_file() or not run_dir.onnx_path(quantized=True).is_file()
    if missing or reexport:
        print(f"exporting {model_dir} to ONNX (fp32 + int8) first ...", flush=True)
        export_onnx(model_dir, quantize="int8", **quantize_opts)
        run_dir = RunDir.open(model_dir)  # the parity report just written
    parity = run_dir.parity
    # how the int8 file on disk was made (it may predate this run's flags)
    quantize_opts = parity.get("quantization", {"unknown": True})
    # torch on CPU too by default: the comparison is of backends on one CPU
    predictors = {
        name: Predictor(model_dir, backend=name, device=device if name == "torch" else None)
        for name in BACKENDS
    }
    dataset, source = _test_split(run_dir, None, None)
    texts, labels = list(dataset["text"]), np.asarray(dataset["label"])
    rng = np.random.default_rng(0)
    small = [
        texts[i]
        for i in rng.choice(len(texts), size=min(batch1_samples, len(texts)), replace=False)
    ]

    accuracy: dict[str, float] = {}
    for name, predictor in predictors.items():  # accuracy pass doubles as warm-up
        predictor.batch_size = 32
        preds = predictor.predict_proba(texts).argmax(-1)
        accuracy[name] = float((preds == labels).mean())
        _time(predictor, small[:16], 1)

    samples: dict[str, dict[int, list[float]]] = {n: {b: [] for b in batch_sizes} for n in BACKENDS}
    for rep in range(repeats):
        order = BACKENDS[rep % len(BACKENDS) :] + BACKENDS[: rep % len(BACKENDS)]
        for batch_size in batch_sizes:
            for name in order:
                subset = small if batch_size == 1 else texts
                samples[name][batch_size].append(_time(predictors[name], subset, batch_size))
        line = "  ".join(
            f"{n}@{b}={samples[n][b][-1]:.0f}/s" for b in batch_sizes for n in BACKENDS
        )
        print(f"rep {rep + 1}/{repeats}: {line}", flush=True)

    results: dict[str, Any] = {}
    for name in BACKENDS:
        row: dict[str, Any] = {
            "accuracy": accuracy[name],
            "accuracy_delta_points": (accuracy[name] - accuracy["torch"]) * 100,
        }
        for b in batch_sizes:
            runs = samples[name][b]
            base = statistics.median(samples["torch"][b])
            row[f"batch{b}"] = {
                "samples_per_s_median": statistics.median(runs),
                "samples_per_s_min": min(runs),
                "samples_per_s_max": max(runs),
                "runs": runs,
                "speedup_vs_torch": statistics.median(runs) / base,
                # ratio within each repetition: robust to load drifting between repetitions
                "speedup_vs_torch_per_rep": [
                    r / t for r, t in zip(runs, samples["torch"][b], strict=True)
                ],
            }
        results[name] = row
    big = max(batch_sizes)
    int8 = results["onnx-int8"]
    return {
        "model_dir": str(model_dir),
        "data_source": source,
        "test_samples": len(texts),
        "batch1_samples": len(small),
        "repeats": repeats,
        "torch_device": device,
        "threads": {
            "torch": predictors["torch"].backend.torch.get_num_threads(),
            "onnxruntime_intra_op": physical_cores(),
        },
        "quantization": quantize_opts,
        "export_parity": parity,
        "results": results,
        "target": {
            "speedup_at_batch": big,
            "speedup": int8[f"batch{big}"]["speedup_vs_torch"],
            "speedup_needed": TARGET_SPEEDUP,
            "accuracy_loss_points": -int8["accuracy_delta_points"],
            "accuracy_loss_allowed_points": TARGET_MAX_LOSS_POINTS,
            "met": bool(
                int8[f"batch{big}"]["speedup_vs_torch"] >= TARGET_SPEEDUP
                and -int8["accuracy_delta_points"] <= TARGET_MAX_LOSS_POINTS
            ),
        },
        "device": device_info(),
        "packages": {
            **package_versions(),
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        "platform": platform.platform(),
        "command": sys.argv,
    }


def print_report(report: dict[str, Any], batch_sizes: list[int]) -> None:
    """A table of medians and ratios against torch fp32."""
    header = f"{'backend':<10} {'accuracy':>9} {'d points':>9}"
    for b in batch_sizes:
        header += f" {f'batch {b} samples/s':>20} {'x torch':>8}"
    print(header)
    for name, row in report["results"].items():
        line = f"{name:<10} {row['accuracy']:>9.4f} {row['accuracy_delta_points']:>+9.2f}"
        for b in batch_sizes:
            cell = row[f"batch{b}"]
            line += f" {cell['samples_per_s_median']:>20.1f} {cell['speedup_vs_torch']:>8.2f}"
        print(line)
    t = report["target"]
    verdict = "MET" if t["met"] else "MISSED"
    print(
        f"target: onnx-int8 >= {t['speedup_needed']}x torch at batch {t['speedup_at_batch']} "
        f"with <= {t['accuracy_loss_allowed_points']} point loss -> {t['speedup']:.2f}x, "
        f"{t['accuracy_loss_points']:+.2f} points lost: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="a run directory written by `sentiment train`")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--batch1-samples", type=int, default=256, help="texts timed at batch 1")
    parser.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="int8 scales per output channel (when this script exports)",
    )
    parser.add_argument(
        "--reduce-range", action="store_true", help="7-bit int8 weights (when this script exports)"
    )
    parser.add_argument(
        "--int8-weights",
        choices=INT8_WEIGHTS,
        default="auto",
        help="int8 weight type (when this script exports; auto: the closer to fp32)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument(
        "--reexport", action="store_true", help="export again even when the ONNX files exist"
    )
    parser.add_argument(
        "--out", type=Path, help="JSON report (default MODEL_DIR/inference_benchmark.json)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        model_dir = RunDir.open(args.model_dir).path
        report = run(
            model_dir,
            args.repeats,
            sorted(args.batch_sizes),
            args.batch1_samples,
            {
                "per_channel": args.per_channel,
                "reduce_range": args.reduce_range,
                "int8_weights": args.int8_weights,
            },
            args.reexport,
            args.device,
        )
    except SentimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print_report(report, sorted(args.batch_sizes))
    out = write_json(args.out or model_dir / "inference_benchmark.json", report)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
