"""Serving throughput: `sentiment serve` driven by wrk, against the model's own speed in process.

    sentiment export RUN_DIR --quantize int8        # once: the default backend needs it
    flock /tmp/sentiment_cpu.lock uv run python benchmarks/serve_load.py RUN_DIR \
        [--backend onnx-int8] [--runner threadpool|batch] [--connections 1,8,32] \
        [--duration 10] [--repeat 3] [--out runs/bench-serve/serve_load.json]

One invocation:

1. starts ``sentiment serve RUN_DIR --port 0`` (it binds a free loopback port itself and logs
   it) with the request log on, in a temporary SQLite file, and polls ``/ready`` until a
   deadline while checking that the server process is still alive;
2. drives ``POST /predict`` with one short review as the JSON body using ``wrk`` (a C load
   generator: one thread, so it takes little of the cores it measures) at each connection count,
   ``--repeat`` interleaved repetitions of ``--duration`` seconds; parses req/s, p50/p99 latency
   (``--latency``) and socket errors / non-2xx-3xx answers; reports the median and range;
3. stops the server, counts the request log's rows against the requests wrk reported, and then
   times the backend in process (:class:`sentiment_hf.inference.predictor.Predictor`, no HTTP) the
   way the
   server runs it (``inference_threads`` concurrent calls of ``intra_op_threads`` threads each)
   at batch 1 and at the micro-batch runner's batch size, also interleaved;
4. prints a table (req/s, p50, p99 per connection count; req/s as a share of the model's texts/s
   at batch 1 and at the runner's batch) and writes everything as JSON to ``--out`` with the CPU
   model and speed flags and the git commit.

Needs ``wrk`` on PATH (Debian: ``apt-get install wrk``). Locust (scripts/loadtest.sh) stays the
tool for scripted user flows; on two shared cores it measures mostly itself.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

from sentiment_hf.hardware import device_info
from sentiment_hf.training.manifest import git_sha

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = "a gorgeous, witty, seductive movie that never loses its nerve."
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")  # the port it bound


def fail(message: str) -> NoReturn:
    """Exit with a one-line error."""
    sys.exit(f"error: {message}")


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, None


class Server:
    """`sentiment serve` in a subprocess on a port it really bound, ready to answer."""

    def __init__(self, cmd: list[str], log_path: Path) -> None:
        self.cmd, self.log_path = cmd, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, ready_timeout_s: float) -> dict[str, Any]:
        """Start on a port the server binds itself (``--port 0``, read from its log) and wait
        for ``/ready``, failing at once with the log's last lines if the process exits."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*self.cmd, "--port", "0"], cwd=ROOT, stdout=log, stderr=log
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log_path.read_text(errors="replace")
                tail = " | ".join(text.strip().splitlines()[-3:])
                fail(f"the server exited (code {self.proc.returncode}): {tail}")
            if not self.url:
                bound = RUNNING.search(self.log_path.read_text(errors="replace"))
                self.url = bound.group(1) if bound else ""
            if self.url:
                try:
                    status, body = _get_json(self.url + "/ready")
                except (OSError, ValueError):
                    status, body = 0, None
                if status == 200:
                    return dict(body)
            time.sleep(0.25)
        self.stop()
        fail(f"the server was not ready within {ready_timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> int | None:
        """SIGINT (graceful: the request log flushes), then SIGKILL after 60 s."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def wrk_script(path: Path, text: str) -> Path:
    """A wrk Lua script that POSTs ``{"text": text}`` as application/json."""
    body = json.dumps({"text": text})  # ASCII only, so a Lua long string holds it verbatim
    if "]==]" in body:
        fail("the review text must not contain ']==]'")
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body}]==]\n"
    )
    return path


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if not match:
        raise ValueError(f"unparsable wrk latency {value!r}")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """req/s, p50/p75/p90/p99 ms, requests, socket errors and non-2xx/3xx from wrk --latency."""
    out: dict[str, Any] = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    out["requests_per_s"] = float(match.group(1))
    match = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    if not match:
        raise ValueError(f"no request count in wrk output:\n{output}")
    out["requests"] = int(match.group(1))
    out["elapsed_s"] = _ms(match.group(2)) / 1e3
    for q, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.M):
        out[f"p{q}_ms"] = _ms(value)
    if "p50_ms" not in out or "p99_ms" not in out:
        raise ValueError(f"no latency distribution in wrk output (--latency):\n{output}")
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    counts = map(int, match.groups()) if match else (0, 0, 0, 0)
    out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), counts, strict=True))
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    out["non_2xx_3xx"] = int(match.group(1)) if match else 0
    out["errors"] = out["non_2xx_3xx"] + sum(out["socket_errors"].values())
    return out


def run_wrk(
    url: str, script: Path, connections: int, duration_s: float, timeout_s: float
) -> dict[str, Any]:
    """One wrk run (1 thread) at ``connections`` open connections."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(script),
        url + "/predict",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return {"connections": connections, **parse_wrk(done.stdout)}


def summarize(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def model_throughput(predictor: Any, text: str, batch: int, streams: int, seconds: float) -> float:
    """Texts/s of ``streams`` threads each calling the predictor on ``batch`` copies of ``text``
    back to back for ``seconds`` (the server's inference threads, without HTTP)."""
    texts = [text] * batch
    counts = [0] * streams
    start = threading.Barrier(streams + 1)
    deadline = [0.0]

    def loop(i: int) -> None:
        start.wait()
        while time.perf_counter() < deadline[0]:
            predictor.predict_proba(texts)
            counts[i] += batch

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def count_rows(db: Path) -> int:
    """Rows in the request log (0 when the file is missing)."""
    if not db.is_file():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


def check_run(run_dir: Path, backend: str) -> None:
    """Exit with a clear message when the run or the backend's ONNX file is missing."""
    from sentiment_hf.errors import SentimentError
    from sentiment_hf.rundir import RunDir

    try:
        run = RunDir.open(run_dir)
    except SentimentError as err:
        fail(str(err))
    if backend.startswith("onnx"):
        path = run.onnx_path(quantized=backend == "onnx-int8")
        if not path.is_file():
            flag = " --quantize int8" if backend == "onnx-int8" else ""
            fail(f"{path} is missing; run `sentiment export {run_dir}{flag}` first")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a run directory written by `sentiment train`")
    p.add_argument("--backend", default="onnx-int8", help="torch, onnx or onnx-int8")
    p.add_argument("--runner", default="threadpool", choices=("threadpool", "batch"))
    p.add_argument("--connections", default="1,8,32", help="comma-separated connection counts")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    p.add_argument("--repeat", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--inference-threads", type=int, default=None, help="server default if unset")
    p.add_argument("--intra-op-threads", type=int, default=None, help="server default if unset")
    p.add_argument("--micro-batch-size", type=int, default=None, help="server default if unset")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before timing")
    p.add_argument("--model-seconds", type=float, default=5.0, help="seconds per in-process run")
    p.add_argument("--text", default=DEFAULT_TEXT, help="the review every request sends")
    p.add_argument("--wrk-timeout", type=float, default=10.0, help="wrk's per-request timeout")
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-serve" / "serve_load.json")
    args = p.parse_args(argv)
    try:
        args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        p.error(f"--connections must be integers, got {args.connections!r}")
    if not args.connections or min(args.connections) < 1 or args.repeat < 1:
        p.error("--connections must be positive and --repeat >= 1")
    return args


def bench_server(args: argparse.Namespace, cfg: Any, tmp: Path) -> dict[str, Any]:
    """Steps 1-2 and the log count: the server under wrk, then stopped."""
    request_log = (tmp / "requests.db").resolve()
    cmd = [
        sys.executable,
        "-m",
        "sentiment_hf.cli",
        "serve",
        str(args.run_dir),
        "--backend",
        args.backend,
        "--runner",
        args.runner,
        "--inference-threads",
        str(cfg.inference_threads),
        "--intra-op-threads",
        str(cfg.intra_op_threads or 0),
        "--micro-batch-size",
        str(cfg.micro_batch_size),
        "--request-log",
        str(request_log),
    ]
    server = Server(cmd, tmp / "server.log")
    started = time.monotonic()
    ready = server.start(args.ready_timeout)
    print(f"server ready at {server.url} in {time.monotonic() - started:.1f} s", flush=True)
    script = wrk_script(tmp / "post.lua", args.text)
    runs: list[dict[str, Any]] = []
    try:
        warm = run_wrk(server.url, script, max(args.connections), args.warmup, args.wrk_timeout)
        for rep in range(args.repeat):
            shift = rep % len(args.connections)  # rotate the order between repetitions
            for conns in args.connections[shift:] + args.connections[:shift]:
                result = {
                    "repetition": rep,
                    **run_wrk(server.url, script, conns, args.duration, args.wrk_timeout),
                }
                runs.append(result)
                print(
                    f"  rep {rep} c={conns:>3}: {result['requests_per_s']:8.1f} req/s "
                    f"p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms "
                    f"errors {result['errors']}",
                    flush=True,
                )
    finally:
        code = server.stop()
    rows = count_rows(request_log)
    wrk_requests = warm["requests"] + sum(r["requests"] for r in runs)
    return {
        "command": [*cmd[2:], "--port", server.url.rsplit(":", 1)[1]],
        "ready": ready,
        "exit_code": code,
        "warmup": warm,
        "runs": runs,
        "request_log": {
            "rows": rows,
            "wrk_requests": wrk_requests,
            "note": "wrk counts answers completed inside each run; a request in flight when a "
            "run ends is answered and logged but not counted, so rows may exceed requests "
            "by at most the sum of connections over the runs",
            "max_uncounted": max(args.connections) + sum(r["connections"] for r in runs),
        },
    }


def bench_model(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    """Step 3: the backend's texts/s in process, the server's thread layout, no HTTP."""
    from sentiment_hf.inference.predictor import Predictor

    batches = sorted({1, cfg.micro_batch_size})
    predictor = Predictor(
        args.run_dir,
        backend=args.backend,
        batch_size=max(cfg.predictor_batch_size, *batches),
        intra_op_threads=cfg.intra_op_threads,
    )
    layouts = [(b, cfg.inference_threads) for b in batches]
    if cfg.inference_threads > 1:
        layouts.append((1, 1))  # one stream: what a single connection can get at best
    for b, s in layouts:  # warm-up
        model_throughput(predictor, args.text, b, s, 0.5)
    samples: dict[tuple[int, int], list[float]] = {layout: [] for layout in layouts}
    for rep in range(args.repeat):
        shift = rep % len(layouts)
        for b, s in layouts[shift:] + layouts[:shift]:
            rate = model_throughput(predictor, args.text, b, s, args.model_seconds)
            samples[(b, s)].append(rate)
            print(
                f"  rep {rep} in-process batch {b:>2} x {s} streams: {rate:8.1f} texts/s",
                flush=True,
            )
    return {
        "intra_op_threads": cfg.intra_op_threads,
        "seconds_per_run": args.model_seconds,
        "results": [
            {"batch": b, "streams": s, "texts_per_s": v, **summarize(v)}
            for (b, s), v in samples.items()
        ],
    }


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    """Add the per-connection summary and shares to ``result`` and print the table."""
    cfg = result["config"]
    model = {(r["batch"], r["streams"]): r["median"] for r in result["model"]["results"]}
    streams = cfg["inference_threads"]
    at1, atb = model[(1, streams)], model[(cfg["micro_batch_size"], streams)]
    rows = []
    for conns in args.connections:
        runs = [r for r in result["server"]["runs"] if r["connections"] == conns]
        rps = summarize([r["requests_per_s"] for r in runs])
        rows.append(
            {
                "connections": conns,
                "requests_per_s": rps,
                "p50_ms": summarize([r["p50_ms"] for r in runs]),
                "p99_ms": summarize([r["p99_ms"] for r in runs]),
                "errors": sum(r["errors"] for r in runs),
                "share_of_model_batch1": rps["median"] / at1,
                "share_of_model_runner_batch": rps["median"] / atb,
            }
        )
    result["table"] = rows
    cpu = result["machine"]
    print(
        f"\n{args.backend}, runner {args.runner}, {streams} inference thread(s) x "
        f"{cfg['intra_op_threads']} intra-op, {args.repeat} x {args.duration:g} s per point; "
        f"{cpu['cpu']} ({' '.join(cpu['cpu_flags']) or 'no speed flags'}), "
        f"commit {result['commit']}"
    )
    print(
        f"model in process ({streams} streams): batch 1 {at1:.1f} texts/s, "
        f"batch {cfg['micro_batch_size']} {atb:.1f} texts/s"
        + (f"; 1 stream batch 1 {model[(1, 1)]:.1f}" if (1, 1) in model and streams > 1 else "")
    )
    b = cfg["micro_batch_size"]
    print(
        f"{'conns':>5} {'req/s med':>10} {'range':>17} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'/ b1':>6} {f'/ b{b}':>6}"
    )
    for r in rows:
        rps = r["requests_per_s"]
        print(
            f"{r['connections']:>5} {rps['median']:>10.1f} "
            f"{rps['min']:>8.1f}-{rps['max']:<8.1f} {r['p50_ms']['median']:>7.1f} "
            f"{r['p99_ms']['median']:>7.1f} {r['errors']:>6} "
            f"{r['share_of_model_batch1']:>6.2f} {r['share_of_model_runner_batch']:>6.2f}"
        )
    log = result["server"]["request_log"]
    print(f"request log: {log['rows']} rows for {log['wrk_requests']} requests wrk reported")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write the JSON report and return it."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        fail("wrk is not installed; install it: apt-get install wrk")
    check_run(args.run_dir, args.backend)
    from sentiment_hf.serve.config import ServeConfig

    overrides = {
        k: getattr(args, k)
        for k in ("inference_threads", "intra_op_threads", "micro_batch_size")
        if getattr(args, k) is not None
    }
    if overrides.get("intra_op_threads") == 0:
        overrides["intra_op_threads"] = None  # the server's "0 = backend default"
    cfg = ServeConfig(model_dir=args.run_dir, backend=args.backend, runner=args.runner, **overrides)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        server = bench_server(args, cfg, Path(tmp))
    model = bench_model(args, cfg)  # after the server stopped: nothing else on the cores
    result: dict[str, Any] = {
        "run_dir": str(args.run_dir),
        "backend": args.backend,
        "runner": args.runner,
        "text": args.text,
        "duration_s": args.duration,
        "repeat": args.repeat,
        "connections": args.connections,
        "load_generator": "wrk -t1 --latency (" + _wrk_version() + ")",
        "config": {
            "inference_threads": cfg.inference_threads,
            "intra_op_threads": cfg.intra_op_threads,
            "micro_batch_size": cfg.micro_batch_size,
            "predictor_batch_size": cfg.predictor_batch_size,
        },
        "commit": git_sha(ROOT),
        "machine": device_info(),
        "server": server,
        "model": model,
    }
    report(result, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (done.stdout + done.stderr).splitlines()[0].strip() if done.stdout or done.stderr else ""


if __name__ == "__main__":
    main()
