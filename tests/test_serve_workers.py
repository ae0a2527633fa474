"""Serving as deployed: `sentiment serve --workers 2 --backend onnx-int8` with the request log
mirrored to gs:// (loopback emulator), a SIGKILL under load, drift on the live database, and the
onnx-int8 app in-process."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from servers import Server, gcs_emulator

from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.serve import create_app, read_requests

# Servers with forked workers, stopped with SIGINT or SIGKILL.
pytestmark = pytest.mark.linux_only

FAST_DRIFT = {"reference_size": 100, "embedding_sample": 50, "permutations": 50, "min_requests": 20}
WORDS = ["witty", "dull", "moving", "tedious", "gorgeous", "clumsy", "tender", "flat"]


def _text(tag: str, i: int) -> str:
    return f"{tag} {i}: a {WORDS[i % 8]} and {WORDS[(i * 3) % 8]} film"


@pytest.fixture(scope="module")
def int8_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run exported with int8 weights (what `make serve` serves)."""
    from sentiment_hf import export_onnx

    out = tmp_path_factory.mktemp("int8") / "run"
    shutil.copytree(tiny_run, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    export_onnx(out, quantize="int8", parity=False)  # parity is test_export's business
    return out


def test_onnx_int8_through_the_app_in_process(int8_run: Path, tmp_path: Path) -> None:
    texts = [_text("in-process", i) for i in range(6)]
    expected = Predictor(int8_run, backend="onnx-int8").predict_proba(texts)
    torch_probs = Predictor(int8_run).predict_proba(texts)
    assert abs(expected - torch_probs).max() > 1e-7  # int8 weights really are what answers
    db = tmp_path / "requests.db"
    app = create_app(int8_run, backend="onnx-int8", request_log=db, log_flush_interval_s=0.02)
    with TestClient(app) as client:
        assert client.get("/ready").json()["backend"] == "onnx-int8"
        body = client.post("/predict", json={"texts": texts}).json()
        assert body["backend"] == "onnx-int8"
        for pred, probs in zip(body["predictions"], expected, strict=True):
            assert [pred["probabilities"][k] for k in ("neg", "pos")] == pytest.approx(
                probs.tolist(), abs=1e-6
            )
    rows = read_requests(db)
    assert [r.text for r in rows] == texts and {r.backend for r in rows} == {"onnx-int8"}


def _per_worker_predict_200(prom_dir: Path) -> dict[str, float]:
    """The /predict 200 counter of each worker process, read from its own multiprocess file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for path in prom_dir.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True):
            for s in metric.samples:
                labels = (s.labels.get("endpoint"), s.labels.get("status"))
                if s.name == "sentiment_requests_total" and labels == ("/predict", "200"):
                    out[path.stem] = out.get(path.stem, 0.0) + s.value
    return out


def _metric(text: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_two_workers_count_log_and_mirror_every_request_once(
    int8_run: Path, tmp_path: Path
) -> None:
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    db = tmp_path / "requests.db"
    url = "gs://sentiment-logs/requests/api"
    with gcs_emulator() as endpoint:
        options = {"endpoint_url": endpoint, "token": "anon"}
        server = Server(
            int8_run,
            *("--backend", "onnx-int8", "--workers", "2", "--request-log", str(db)),
            *("--log-flush-interval", "0.05", "--log-mirror", url, "--log-mirror-interval", "0.2"),
            *("--mirror-option", f"endpoint_url={endpoint}", "--mirror-option", "token=anon"),
            workers=2,
            env={"PROMETHEUS_MULTIPROC_DIR": str(prom_dir)},
        )
        try:
            sent: list[str] = []

            def one(i: int) -> tuple[int, str, dict]:
                text = _text("workers", i)
                resp = httpx.post(f"{server.url}/predict", json={"text": text}, timeout=30)
                return resp.status_code, text, resp.json()

            answers = []
            with ThreadPoolExecutor(8) as pool:
                # Fresh connections spread over both workers; keep going until both answered.
                while len(answers) < 400:
                    answers += pool.map(one, range(len(answers), len(answers) + 24))
                    if len(_per_worker_predict_200(prom_dir)) == 2 and len(answers) >= 48:
                        break
            sent = [text for _, text, _ in answers]
            assert [status for status, _, _ in answers] == [200] * len(sent)
            # int8 activations are quantized per call: compare with the same one-text calls
            predictor = Predictor(int8_run, backend="onnx-int8")
            expected = [predictor.predict_proba([text])[0] for text in sent[:16]]
            for (_, _, body), probs in zip(answers[:16], expected, strict=True):
                got = body["predictions"][0]["probabilities"]
                assert [got["neg"], got["pos"]] == pytest.approx(probs.tolist(), abs=1e-6)
            per_worker = _per_worker_predict_200(prom_dir)
            assert len(per_worker) == 2 and min(per_worker.values()) > 0, per_worker
            assert sum(per_worker.values()) == len(sent)
            for _ in range(3):  # whichever worker answers /metrics, it shows the sum
                metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
                series = 'sentiment_requests_total{endpoint="/predict",method="POST",status="200"}'
                assert _metric(metrics, series) == len(sent)
                assert _metric(metrics, "sentiment_predictions_total{") == len(sent)
                assert _metric(metrics, "sentiment_request_batch_size_count") == len(sent)
        finally:
            code = server.stop()
        assert code == 0, "".join(server.lines[-20:])
        logged = Counter(r.text for r in read_requests(db))
        assert logged == Counter(sent)  # every request exactly once, from both workers
        mirrored = read_requests(url, storage_options=options)
    assert Counter(r.text for r in mirrored) == Counter(sent)
    assert sorted(r.id for r in mirrored) == sorted(r.id for r in read_requests(db))


def test_sigkill_under_load_loses_only_the_last_flush_interval(
    int8_run: Path, tmp_path: Path
) -> None:
    """The request log's promise: rows answered more than ``--log-flush-interval`` (plus one
    batch write) before a SIGKILL are in the database. `detect_drift` reads the live database
    while the server writes."""
    from sentiment_hf.monitoring import DriftConfig, detect_drift

    flush_s, slack_s = 0.2, 1.0
    db = tmp_path / "requests.db"
    server = Server(
        int8_run,
        *("--backend", "onnx-int8", "--request-log", str(db)),
        *("--log-flush-interval", str(flush_s)),
    )
    acked: dict[str, float] = {}
    sent: set[str] = set()
    stop = threading.Event()
    counter = iter(range(10**9))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                with lock:
                    text = _text("kill", next(counter))
                    sent.add(text)
                try:
                    resp = http.post(f"{server.url}/predict", json={"text": text})
                except httpx.HTTPError:
                    return  # the server is gone
                if resp.status_code == 200:
                    acked[text] = time.monotonic()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        # the log's promise, not the answers: wait until the writer has committed 60 rows
        # (a fast machine answers hundreds of requests inside one flush interval)
        _poll(lambda: _committed(db) >= 60, server, "60 committed rows")
        report = detect_drift(  # the server keeps writing meanwhile
            DriftConfig(int8_run, db, output_dir=tmp_path / "drift", **FAST_DRIFT)
        )
        assert report.n_requests >= 60
        before = len(acked)
        _poll(lambda: len(acked) > before + 10, server, "answers after the drift report")
        killed_at = time.monotonic()  # still under load at the kill
        server.kill()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        if server.proc.poll() is None:
            server.kill()
    logged = [r.text for r in read_requests(db)]
    assert len(logged) == len(set(logged)) and set(logged) <= sent
    old_enough = {t for t, at in acked.items() if at < killed_at - flush_s - slack_s}
    missing = old_enough - set(logged)
    assert not missing, f"{len(missing)} rows answered > {flush_s + slack_s}s before the kill lost"
    lost = set(acked) - set(logged)
    ages = sorted(killed_at - acked[t] for t in lost)
    print(f"acknowledged {len(acked)}, logged {len(logged)}, lost {len(lost)}; ages {ages[-1:]}")


def _committed(db: Path) -> int:
    """Rows the request log has committed (0 before the writer created its table)."""
    try:
        with closing(sqlite3.connect(db, timeout=10)) as conn:
            return conn.execute("select count(*) from requests").fetchone()[0]
    except sqlite3.OperationalError:  # no table yet
        return 0


def _poll(done: Callable[[], bool], server: Server, what: str, timeout_s: float = 120) -> None:
    """Wait until ``done()``; fail at once if the server died, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert server.proc.poll() is None, "server died:\n" + "".join(server.lines[-20:])
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        time.sleep(0.02)


def test_soak_script_smoke(int8_run: Path, rt_dir: Path, tmp_path: Path) -> None:
    """benchmarks/soak.py for a few seconds (its speed and RSS figures are not asserted)."""
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"
    spec = importlib.util.spec_from_file_location("soak", path)
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    argv = [str(int8_run), "--minutes", "0.1", "--clients", "2", "--warmup-s", "1"]
    summary = soak.main([*argv, "--data", str(rt_dir), "--out", str(tmp_path)])
    assert summary["requests"] > 0 and summary["errors"] == 0
    assert summary["rows_logged"] == summary["responses_200_incl_warmup"] >= summary["requests"]
    assert summary["server_exit_code"] == 0 and summary["backend"] == "onnx-int8"
    (minute,) = summary["per_minute"]
    assert minute["requests"] == summary["requests"] and minute["p50_ms"] <= minute["p99_ms"]
    assert json.loads((tmp_path / "soak.json").read_text()) == summary
    assert soak.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert soak.percentile(list(map(float, range(1, 101))), 0.99) == 99.0
