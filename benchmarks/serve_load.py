"""Serving benchmark: scripts/loadtest.sh over several backend/runner settings, one after another.

    uv run python benchmarks/serve_load.py runs/base-1ep \
        --config torch:batch --config onnx-int8:batch --config onnx-int8:threadpool \
        --rate 0 --run-time 30s

Each config is ``BACKEND:RUNNER[:INTRA_OP_THREADS[:INFERENCE_THREADS]]`` (both default to 1). The
first config is the baseline; the table shows every run's throughput and latency and its ratio
to the baseline measured in the same invocation (the machine is shared, so only same-run ratios
are comparable).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(
    model_dir: str,
    backend: str,
    runner: str,
    intra_op: str,
    pool: str,
    round_: int,
    args: argparse.Namespace,
) -> dict:
    name = f"{backend}-{runner}-t{intra_op}-i{pool}-m{args.micro_batch_size}-r{args.rate:g}"
    out = Path(args.out) / name / f"round{round_}"
    env = {
        **os.environ,
        "USERS": str(args.users),
        "RUN_TIME": args.run_time,
        "RATE_PER_USER": str(args.rate),
        "RUNNER": runner,
        "OUT": str(out),
        "SERVE_ARGS": f"--intra-op-threads {intra_op} --inference-threads {pool} "
        f"--micro-batch-size {args.micro_batch_size}",
    }
    cmd = ["bash", str(ROOT / "scripts" / "loadtest.sh"), model_dir, backend]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"loadtest failed for {backend}:{runner}:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    summary["intra_op_threads"] = int(intra_op)
    summary["inference_threads"] = int(pool)
    summary["micro_batch_size"] = args.micro_batch_size
    return summary


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument(
        "--config", action="append", required=True, help="BACKEND:RUNNER[:INTRA_OP_THR[:INFER_THR]]"
    )
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0, help="req/s per user; 0 = no wait")
    parser.add_argument("--run-time", default="30s")
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds; configs alternate, medians are reported"
    )
    parser.add_argument("--out", default="/tmp/sentiment-serve-bench")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {spec: [] for spec in args.config}
    for round_ in range(args.repeat):
        for spec in args.config:
            backend, runner, *rest = spec.split(":")
            intra_op = rest[0] if rest else "1"
            pool = rest[1] if len(rest) > 1 else "1"
            result = run_one(args.model_dir, backend, runner, intra_op, pool, round_, args)
            result["round"] = round_
            runs[spec].append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    keys = ("requests_per_s", "p50_ms", "p95_ms", "p99_ms")
    results = []
    for rs in runs.values():
        med = {**rs[0], **{k: _median([r[k] for r in rs]) for k in keys}}
        med["failures"] = sum(r["failures"] for r in rs)
        results.append(med)
    base = results[0]
    print(f"medians of {args.repeat} alternating round(s); ratios against the first config")
    print(
        f"{'backend':10} {'runner':10} {'thr':>3} {'inf':>4} {'req/s':>8} {'p50':>5} {'p95':>5} "
        f"{'p99':>5} {'fail':>5} {'x req/s':>8} {'x p99':>6}"
    )
    for r in results:
        print(
            f"{r['backend']:10} {r['runner']:10} {r['intra_op_threads']:>3} "
            f"{r['inference_threads']:>4} "
            f"{r['requests_per_s']:>8.1f} {r['p50_ms']:>5.0f} {r['p95_ms']:>5.0f} "
            f"{r['p99_ms']:>5.0f} {r['failures']:>5} "
            f"{r['requests_per_s'] / base['requests_per_s']:>8.2f} "
            f"{r['p99_ms'] / max(base['p99_ms'], 1e-9):>6.2f}"
        )


if __name__ == "__main__":
    main()
