"""Soak test: `sentiment serve` under steady load for minutes, with the request log on.

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/soak.py /work/shipped/cand-s42 \
        --minutes 10 --clients 8 --out /tmp/soak

Starts the server (``--backend onnx-int8`` by default, the backend of ``make serve``) on a free
loopback port with a fresh SQLite request log, warms it up, then runs ``--clients`` closed-loop
client threads (httpx, keep-alive, one text per request, no think time) for ``--minutes``. Texts
are sentences drawn with a fixed seed from the raw rt-polarity files. Reports per minute:
requests, errors (non-200 or transport errors), p50/p99 latency and the server's RSS; the RSS
after the warm-up and at the end (growth target < 10 %); and, after a graceful stop, the rows in
the request log against the 200s the clients received (they must be equal). The clients run on
the same machine as the server and share its cores. Writes ``soak.json`` to ``--out``.

``--end kill`` measures the request log's durability instead of a graceful stop: the server is
SIGKILLed under load at the end, and the rows lost (200s received minus rows in the database)
are expressed as the last N ms of acknowledged requests before the kill.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
STARTED = "Application startup complete."


def rt_sentences(data_dir: Path) -> list[str]:
    """The rt-polarity sentences (raw Cornell files: latin-1, one sentence per "\\n" line)."""
    texts = []
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        raw = (data_dir / name).read_bytes().decode("latin-1")
        texts += [line.strip() for line in raw.split("\n") if line.strip()]
    if not texts:
        sys.exit(f"error: no sentences in {data_dir}; pass --data the rt-polarity folder")
    return texts


def default_data() -> Path:
    for base in (ROOT, *ROOT.parents):
        candidate = base / "shared" / "data" / "rt-polarity"
        if (candidate / "rt-polarity.pos").is_file():
            return candidate
    return ROOT / "shared" / "data" / "rt-polarity"


class ServerProcess:
    """`sentiment serve` in a subprocess; its URL is read from the log."""

    def __init__(self, cmd: list[str], log_path: Path, timeout_s: float = 300) -> None:
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.url = ""
        ready = threading.Event()
        started = False

        def pump() -> None:  # uvicorn logs the start and the URL in either order
            nonlocal started
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.log.write(line)
                self.log.flush()
                match = RUNNING.search(line)
                if match:
                    self.url = match.group(1)
                started = started or STARTED in line
                if started and self.url:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout_s) or not self.url:
            self.proc.kill()
            sys.exit(f"error: the server did not start; see {log_path}")

    def rss(self) -> int:
        import psutil

        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def stop(self, kill: bool = False) -> int:
        if kill:
            self.proc.kill()
        else:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=120)
        self.log.close()
        return code


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 1)))  # ceil(q * n)
    return ordered[min(rank, len(ordered)) - 1]


def run_clients(
    url: str, texts: list[str], clients: int, seconds: float, seed: int, start: float | None = None
) -> list[tuple[float, float, bool]]:
    """Closed-loop clients for ``seconds``; (finish time since start, latency s, ok) per request."""
    import httpx

    results: list[tuple[float, float, bool]] = []
    start = time.monotonic() if start is None else start
    end = start + seconds

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        with httpx.Client(timeout=60) as http:
            while (now := time.monotonic()) < end:
                text = rng.choice(texts)
                try:
                    ok = http.post(f"{url}/predict", json={"text": text}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                done = time.monotonic()
                results.append((done - start, done - now, ok))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def per_minute(
    results: list[tuple[float, float, bool]], minutes: float, rss: dict[int, int]
) -> list[dict]:
    """Requests, errors, p50/p99 (ms) and RSS (MB) for each minute of the run."""
    rows = []
    for minute in range(max(1, int(-(-minutes // 1)))):
        window = [r for r in results if minute * 60 <= r[0] < (minute + 1) * 60]
        latencies = [lat * 1000 for _, lat, ok in window if ok]
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        rows.append(
            {
                "minute": minute + 1,
                "requests": len(window),
                "errors": sum(1 for r in window if not r[2]),
                "p50_ms": round(p50, 1) if p50 is not None else None,
                "p99_ms": round(p99, 1) if p99 is not None else None,
                "rss_mb": round(rss[minute] / 2**20, 1) if minute in rss else None,
            }
        )
    return rows


def soak(args: argparse.Namespace) -> dict:
    """Run the soak described by ``args``; returns the summary written to soak.json."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "requests.db"
    for stale in out.glob("requests.db*"):
        stale.unlink()
    texts = rt_sentences(Path(args.data))
    cmd = [sys.executable, "-m", "sentiment_hf.cli", "serve", str(args.model_dir), "--port", "0"]
    cmd += ["--backend", args.backend, "--request-log", str(db), *args.serve_arg]
    server = ServerProcess(cmd, out / "server.log")
    load_start = os.getloadavg()
    rss_ready = server.rss()
    warm = run_clients(server.url, texts, args.clients, args.warmup_s, args.seed + 1)
    rss_start = server.rss()
    rss: dict[int, int] = {}
    stop_sampling = threading.Event()
    started = time.monotonic()

    def sample() -> None:  # the RSS at the end of each minute
        minute = 0
        while not stop_sampling.wait(max(0.0, started + 60 * (minute + 1) - time.monotonic())):
            rss[minute] = server.rss()
            minute += 1

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    kill = args.end == "kill"
    seconds = args.minutes * 60
    killed: dict[str, float] = {}

    def kill_under_load() -> None:
        killed["rss"] = server.rss()
        killed["at"] = time.monotonic() - started
        killed["code"] = server.stop(kill=True)

    if kill:  # the clients keep going 2 s past the kill
        threading.Timer(max(0.0, started + seconds - time.monotonic()), kill_under_load).start()
    results = run_clients(
        server.url, texts, args.clients, seconds + (2 if kill else 0), args.seed, start=started
    )
    stop_sampling.set()
    load_end = os.getloadavg()
    if kill:
        rss_end, code = int(killed["rss"]), int(killed["code"])
        results = [r for r in results if r[0] < killed["at"]]
    else:
        rss_end = server.rss()
        code = server.stop()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows_logged = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    ok_total = sum(1 for *_, ok in warm + results if ok)
    latencies = [lat * 1000 for _, lat, ok in results if ok]
    summary = {
        "model_dir": str(args.model_dir),
        "backend": args.backend,
        "serve_args": args.serve_arg,
        "commit": _commit(),
        "clients": args.clients,
        "minutes": args.minutes,
        "warmup_s": args.warmup_s,
        "requests": len(results),
        "errors": sum(1 for *_, ok in results if not ok),
        "throughput_rps": round(len(results) / (args.minutes * 60), 1),
        "p50_ms": round(percentile(latencies, 0.5) or 0, 1),
        "p99_ms": round(percentile(latencies, 0.99) or 0, 1),
        "per_minute": per_minute(results, args.minutes, rss),
        "rss_ready_mb": round(rss_ready / 2**20, 1),
        "rss_start_mb": round(rss_start / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 2),
        "responses_200_incl_warmup": ok_total,
        "rows_logged": rows_logged,
        "server_exit_code": code,
        "end": args.end,
        "loadavg_start": [round(v, 2) for v in load_start],
        "loadavg_end": [round(v, 2) for v in load_end],
    }
    if kill:
        lost = ok_total - rows_logged
        acks = sorted(t for t, _, ok in results if ok)
        summary["rows_lost"] = lost
        # as many rows lost as requests acknowledged in the last `window` before the kill
        summary["lost_window_ms"] = (
            round((killed["at"] - acks[-lost]) * 1000, 1) if 0 < lost <= len(acks) else 0.0
        )
    (out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    return done.stdout.strip() or "unknown"


def render(summary: dict) -> str:
    """A Markdown table of the per-minute figures and a line of totals."""
    lines = [
        "| minute | requests | errors | p50 ms | p99 ms | server RSS MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in summary["per_minute"]:
        cells = [row[k] for k in ("minute", "requests", "errors", "p50_ms", "p99_ms", "rss_mb")]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    lines.append("")
    lines.append(
        f"{summary['requests']} requests, {summary['errors']} errors, "
        f"{summary['throughput_rps']} req/s, p50 {summary['p50_ms']} ms, p99 "
        f"{summary['p99_ms']} ms; RSS {summary['rss_start_mb']} -> {summary['rss_end_mb']} MB "
        f"({summary['rss_growth_pct']:+.2f} %; {summary['rss_ready_mb']} MB before the warm-up); "
        f"rows logged {summary['rows_logged']} vs 200s {summary['responses_200_incl_warmup']} "
        f"(warm-up included); server exit code {summary['server_exit_code']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--warmup-s", type=float, default=20.0, help="load before the timed run")
    parser.add_argument("--data", default=str(default_data()), help="the rt-polarity folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/sentiment-soak")
    parser.add_argument(
        "--end", choices=("stop", "kill"), default="stop", help="graceful stop or SIGKILL"
    )
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="extra `sentiment serve` argument"
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.clients < 1 or args.warmup_s < 0:
        parser.error("--minutes must be > 0, --clients >= 1 and --warmup-s >= 0")
    summary = soak(args)
    print(render(summary))
    if args.end == "kill":
        print(
            f"SIGKILL under load: {summary['rows_lost']} rows lost = the requests acknowledged "
            f"in the last {summary['lost_window_ms']} ms before the kill"
        )
    return summary


if __name__ == "__main__":
    main()
