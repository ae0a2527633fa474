"""The inference app in-process (TestClient): predictions, limits, bad payloads, metrics."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sentiment_hf.errors import SentimentError
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.serve import create_app, read_requests
from sentiment_hf.serve.runner import MicroBatchRunner, ThreadPoolRunner

TEXTS = [
    "a gorgeous, witty, seductive movie.",
    "the plot is nothing but boilerplate clichés from start to finish,",
    "effective but too-tepid biopic",
    "great film",
]


@pytest.fixture(scope="module")
def served(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """A running app (lifespan entered) with a small request log and tight limits."""
    db = tmp_path_factory.mktemp("serve") / "requests.db"
    app = create_app(
        tiny_run,
        request_log=db,
        log_flush_interval_s=0.05,
        max_text_chars=2000,
        max_texts_per_request=16,
        max_body_bytes=100_000,
    )
    with TestClient(app) as client:
        yield client, app, db


def test_predict_matches_predictor_in_order(served, tiny_run: Path) -> None:
    client, app, _ = served
    expected = Predictor(tiny_run).predict_proba(TEXTS)
    resp = client.post("/predict", json={"texts": TEXTS})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["backend"] == "torch"
    assert body["model_version"] == app.state.model_version
    assert body["model_version"].startswith("tiny-")
    assert len(body["predictions"]) == len(TEXTS)
    for pred, probs in zip(body["predictions"], expected, strict=True):
        assert set(pred["probabilities"]) == {"neg", "pos"}
        assert pred["label"] == ["neg", "pos"][int(probs.argmax())]
        assert pred["score"] == pytest.approx(float(probs.max()), abs=1e-5)
        assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    single = client.post("/predict", json={"text": TEXTS[1]}).json()
    assert single["predictions"][0]["probabilities"]["pos"] == pytest.approx(
        float(expected[1][1]), abs=1e-5
    )


def test_an_app_in_this_process_leaves_its_torch_threads_alone(tiny_run: Path) -> None:
    """The app runs each torch call on ``intra_op_threads`` and puts the caller's count back;
    only a serving process (`sentiment serve`, its workers) sets it for good (own_process)."""
    import torch

    from sentiment_hf.serve.config import ServeConfig

    before = torch.get_num_threads()
    other = 1 if before > 1 else 2
    app = create_app(tiny_run, request_log=None, intra_op_threads=other)
    with TestClient(app) as client:
        assert client.post("/predict", json={"texts": TEXTS}).status_code == 200
    assert torch.get_num_threads() == before
    ServeConfig(model_dir=tiny_run, backend="onnx", intra_op_threads=other).own_process()
    assert torch.get_num_threads() == before  # ONNX sessions hold their own thread count
    ServeConfig(model_dir=tiny_run, intra_op_threads=other).own_process()
    assert torch.get_num_threads() == other  # (conftest puts it back after this test)


def _chunks(data: bytes, size: int = 4096):
    for i in range(0, len(data), size):
        yield data[i : i + size]


J = {"content-type": "application/json"}
BAD_PAYLOADS = [
    # (name, raw body, headers, expected status)
    ("empty body", b"", J, 422),
    ("empty object", b"{}", J, 422),
    ("invalid json", b'{"text": "unterminated', J, 422),
    ("trailing garbage", b'{"text": "ok"} extra', J, 422),
    ("non-utf8 bytes", b'{"text": "\xff\xfe\xfa"}', J, 400),
    ("lone surrogate", b'{"text": "\\ud800 half a pair"}', J, 422),
    ("null text", b'{"text": null}', J, 422),
    ("null texts", b'{"texts": null}', J, 422),
    ("null item", b'{"texts": ["ok", null]}', J, 422),
    ("empty string", b'{"text": ""}', J, 422),
    ("whitespace only", b'{"text": " \\n\\t  "}', J, 422),
    ("whitespace item", b'{"texts": ["fine", "   "]}', J, 422),
    ("empty list", b'{"texts": []}', J, 422),
    ("number text", b'{"text": 42}', J, 422),
    ("bool text", b'{"text": true}', J, 422),
    ("NaN text", b'{"text": NaN}', J, 422),
    ("object text", b'{"text": {"a": 1}}', J, 422),
    ("string texts", b'{"texts": "not a list"}', J, 422),
    ("numbers in texts", b'{"texts": [1, 2, 3]}', J, 422),
    ("nested lists", b'{"texts": [["nested"]]}', J, 422),
    ("both fields", b'{"text": "a", "texts": ["b"]}', J, 422),
    ("unknown field", b'{"text": "a", "temperature": 0.5}', J, 422),
    ("top-level list", b'["great film"]', J, 422),
    ("top-level string", b'"great film"', J, 422),
    ("top-level number", b"123", J, 422),
    ("text too long", json.dumps({"text": "x" * 2001}).encode(), J, 422),
    ("too many items", json.dumps({"texts": ["ok"] * 17}).encode(), J, 422),
    ("10,000 items", json.dumps({"texts": ["a"] * 10_000}).encode(), J, 422),
    ("1 MB text", json.dumps({"text": "a" * 1_000_000}).encode(), J, 413),
    ("deep nesting", b"[" * 100_000, J, 400),
    ("plain text content type", b'{"text": "hi"}', {"content-type": "text/plain"}, 422),
    ("form content type", b"text=hi", {"content-type": "application/x-www-form-urlencoded"}, 422),
    ("no content type", b'{"text": "hi"}', {}, 422),
    ("bad content length", b'{"text": "hi"}', {**J, "content-length": "abc"}, 400),
]


@pytest.mark.parametrize(
    ("raw", "headers", "status"),
    [pytest.param(raw, h, s, id=name) for name, raw, h, s in BAD_PAYLOADS],
)
def test_bad_payloads_are_4xx_with_a_message(served, raw: bytes, headers, status: int) -> None:
    client, _, _ = served
    resp = client.post("/predict", content=raw, headers=headers)
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail


def test_limits_are_named_in_the_message(served) -> None:
    client, _, _ = served
    too_many = client.post("/predict", json={"texts": ["ok"] * 17}).json()["detail"]
    assert "texts" in too_many and "16" in too_many
    too_long = client.post("/predict", json={"text": "x" * 2001}).json()["detail"]
    assert "2000" in too_long
    huge = client.post("/predict", json={"text": "a" * 200_000})
    assert huge.status_code == 413 and "100000 bytes" in huge.json()["detail"]


def test_chunked_body_over_the_limit_is_413(served) -> None:
    client, _, _ = served
    body = json.dumps({"text": "b" * 150_000}).encode()
    resp = client.post("/predict", content=_chunks(body), headers=J)  # no Content-Length
    assert resp.status_code == 413
    ok = client.post("/predict", content=_chunks(b'{"text": "chunked but small"}'), headers=J)
    assert ok.status_code == 200


def test_wrong_method_and_unknown_path(served) -> None:
    client, _, _ = served
    assert client.get("/predict").status_code == 405
    assert client.get("/nope").status_code == 404


def test_health_ready_and_openapi_limits(served) -> None:
    client, _, _ = served
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["labels"] == ["neg", "pos"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]
    texts = schema["properties"]["texts"]
    assert texts["maxItems"] == 16 and texts["items"]["maxLength"] == 2000
    # exactly one of the two fields, neither nullable: what the server accepts
    assert schema["oneOf"] == [{"required": ["text"]}, {"required": ["texts"]}]
    assert schema["properties"]["text"]["type"] == "string"
    both = client.post("/predict", json={"text": "good", "texts": ["bad"]})
    null = client.post("/predict", json={"text": None, "texts": ["bad"]})
    assert both.status_code == null.status_code == 422
    assert "null" in null.json()["detail"]


def _series(text: str) -> dict[str, float]:
    """Prometheus exposition lines as ``{name{labels}: value}``."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_metrics_count_statuses_labels_and_model(served) -> None:
    client, app, _ = served
    ok = 'sentiment_requests_total{endpoint="/predict",method="POST",status="200"}'
    bad = 'sentiment_requests_total{endpoint="/predict",method="POST",status="422"}'
    batch = "sentiment_request_batch_size_count"
    before = _series(client.get("/metrics").text)
    answer = client.post("/predict", json={"texts": TEXTS[:3]}).json()
    client.post("/predict", json={"text": ""})
    client.post("/predict", json={"text": ""})
    text = client.get("/metrics").text
    after = _series(text)
    version = app.state.model_version
    assert 'sentiment_model_info{backend="torch",model_dir="' in text
    assert f'model_version="{version}"' in text
    assert after[ok] - before.get(ok, 0) == 1
    assert after[bad] - before.get(bad, 0) == 2
    labels = [p["label"] for p in answer["predictions"]]
    for label in set(labels):  # every answered label is counted once per text
        key = f'sentiment_predictions_total{{label="{label}"}}'
        assert after[key] - before.get(key, 0) == labels.count(label)
    latency = 'sentiment_request_latency_seconds_count{endpoint="/predict"}'
    assert after[latency] - before.get(latency, 0) >= 1
    assert after[batch] - before.get(batch, 0) >= 1
    assert after["sentiment_model_ready"] == 1.0


def test_page_is_self_contained(served) -> None:
    client, _, _ = served
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    html = resp.text
    assert 'id="text"' in html and 'id="bar-fill"' in html
    for external in ("http://", "https://", "//cdn", "<link", "src="):
        assert external not in html
    assert "default-src 'none'" in resp.headers["content-security-policy"]


def test_predictions_reach_the_request_log(served) -> None:
    client, app, db = served
    marker = "request-log marker: a sincere, touching drama"
    client.post("/predict", json={"texts": [marker, "second"]})
    for _ in range(100):
        rows = [r for r in read_requests(db) if r.text == marker]
        if rows:
            break
        threading.Event().wait(0.05)
    assert len(rows) == 1
    row = rows[0]
    assert row.model_version == app.state.model_version and row.backend == "torch"
    assert set(row.probabilities) == {"neg", "pos"} and row.latency_ms > 0


def test_drift_flag_exposed_on_metrics(tiny_run: Path, tmp_path: Path) -> None:
    report = tmp_path / "drift.json"
    app = create_app(tiny_run, request_log=None, drift_report=report)
    with TestClient(app) as client:
        assert "sentiment_drift_detected" not in client.get("/metrics").text
        report.write_text(json.dumps({"drift_detected": True}))
        assert "sentiment_drift_detected 1.0" in client.get("/metrics").text
        report.write_text(json.dumps({"drift_detected": False}))
        assert "sentiment_drift_detected 0.0" in client.get("/metrics").text


def test_micro_batching_app_matches_the_predictor(tiny_run: Path) -> None:
    expected = Predictor(tiny_run).predict_proba(TEXTS)
    app = create_app(
        tiny_run, runner="batch", inference_threads=2, micro_batch_size=2, request_log=None
    )
    with TestClient(app) as client:
        resp = client.post("/predict", json={"texts": TEXTS})
        metrics = client.get("/metrics").text
    assert resp.status_code == 200
    got = [p["probabilities"]["pos"] for p in resp.json()["predictions"]]
    assert got == pytest.approx(expected[:, 1].tolist(), abs=1e-5)
    assert "sentiment_inference_batch_size_count" in metrics


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tensorflow"}, "unknown backend"),
        ({"runner": "celery"}, "unknown runner"),
        ({"max_texts_per_request": 0}, "max_texts_per_request"),
        ({"log_mirror": "gs://b/p", "request_log": None}, "needs a request log"),
    ],
)
def test_bad_settings_are_sentiment_errors(tiny_run: Path, kwargs, message: str) -> None:
    with pytest.raises(SentimentError, match=message):
        create_app(tiny_run, **kwargs)


def test_missing_model_dir_is_sentiment_error(tmp_path: Path) -> None:
    with pytest.raises(SentimentError, match="does not exist"):
        create_app(tmp_path / "missing")


# --- runners: deterministic checks with a model function that blocks until released ---------


class GatedModel:
    """A stand-in for a slow model call: blocks until released and records each call's texts."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("never released")
        if "boom" in texts:
            raise ValueError("model failed on 'boom'")
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


async def _wait_for(event: threading.Event) -> None:
    for _ in range(3000):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("event never set")


@pytest.mark.parametrize("kind", ["batch", "threadpool"])
def test_inference_never_blocks_the_event_loop(kind: str) -> None:
    async def scenario() -> None:
        model = GatedModel()
        runner = MicroBatchRunner(model) if kind == "batch" else ThreadPoolRunner(model)
        await runner.start()
        pending = asyncio.create_task(runner.run(["slow"]))
        await _wait_for(model.entered)
        # The model call is blocked in its thread; the loop must still run timers and tasks
        # (a model called on the loop would hold it until the 30 s gate times out).
        loop = asyncio.get_running_loop()
        fired = loop.create_future()
        loop.call_later(0.01, fired.set_result, "timer ran")
        assert await asyncio.wait_for(fired, timeout=5) == "timer ran"
        assert not pending.done() and not model.release.is_set()
        model.release.set()
        out = await asyncio.wait_for(pending, 10)
        assert out.tolist() == [[4.0, 1.0]]
        await runner.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_micro_batcher_joins_waiting_requests_and_splits_results() -> None:
    async def scenario() -> None:
        model = GatedModel()
        runner = MicroBatchRunner(model, micro_batch_size=64)
        await runner.start()
        first = asyncio.create_task(runner.run(["a"]))
        await _wait_for(model.entered)
        waiting = [
            asyncio.create_task(runner.run(["bb", "ccc"])),
            asyncio.create_task(runner.run(["dddd"])),
        ]
        await asyncio.sleep(0.05)
        model.release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *waiting), 10)
        assert model.calls == [["a"], ["bb", "ccc", "dddd"]]
        assert [r[:, 0].tolist() for r in results] == [[1.0], [2.0, 3.0], [4.0]]
        await runner.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_micro_batcher_threads_run_batches_side_by_side() -> None:
    async def scenario() -> None:
        model = GatedModel()
        runner = MicroBatchRunner(model, micro_batch_size=2, inference_threads=2)
        await runner.start()
        first = asyncio.create_task(runner.run(["a", "b"]))
        await _wait_for(model.entered)
        second = asyncio.create_task(runner.run(["ccc"]))
        for _ in range(3000):  # the second loop calls the model while the first is blocked
            if len(model.calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert model.calls == [["a", "b"], ["ccc"]]
        model.release.set()
        assert (await first)[:, 0].tolist() == [1.0, 1.0]
        assert (await second)[:, 0].tolist() == [3.0]
        await runner.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_micro_batcher_isolates_a_failing_request() -> None:
    async def scenario() -> None:
        model = GatedModel()
        runner = MicroBatchRunner(model)
        await runner.start()
        first = asyncio.create_task(runner.run(["warm"]))
        await _wait_for(model.entered)
        bad = asyncio.create_task(runner.run(["boom"]))
        good = asyncio.create_task(runner.run(["fine"]))
        await asyncio.sleep(0.05)
        model.release.set()
        await first
        assert (await asyncio.wait_for(good, 10)).tolist() == [[4.0, 1.0]]
        with pytest.raises(ValueError, match="boom"):
            await asyncio.wait_for(bad, 10)
        await runner.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_unhandled_error_is_a_json_500_and_counted(tiny_run: Path) -> None:
    # A healthy model cannot be made to crash for real, so after warm-up the runner's model
    # function is swapped for one that raises, as a broken backend would.
    app = create_app(tiny_run, request_log=None)

    def broken(texts):
        raise RuntimeError("backend crashed")

    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.runner._call.predict = broken
        resp = client.post("/predict", json={"text": "fine input"})
        assert resp.status_code == 500
        assert resp.json() == {"detail": "internal server error; see the server log"}
        assert "backend crashed" not in resp.text
        metrics = client.get("/metrics").text
        line = 'sentiment_requests_total{endpoint="/predict",method="POST",status="500"} 1.0'
        assert line in metrics
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_the_app_hashes_its_weights_once(
    tiny_exported: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model version and the ONNX provenance check read one RunDir's weight hash (the app
    and the ONNX backend each opened the run again and re-hashed its weights)."""
    import hashlib

    from sentiment_hf import rundir
    from sentiment_hf.serve import create_app

    hashed: list[str] = []

    class CountingHashlib:
        def sha256(self, *args: object) -> object:
            hashed.append("sha256")
            return hashlib.sha256(*args)

    monkeypatch.setattr(rundir, "hashlib", CountingHashlib())
    app = create_app(tiny_exported, backend=backend, request_log=None)
    assert len(hashed) == 1, hashed
    with TestClient(app) as client:
        assert client.post("/predict", json={"text": "fine ."}).status_code == 200


def test_an_onnx_app_explains_with_the_run_it_holds(tiny_exported: Path) -> None:
    """/explain on an ONNX app loads a torch predictor (gradients) from the RunDir the app
    already holds (it reopened the run from its directory)."""
    app = create_app(tiny_exported, backend="onnx-int8", request_log=None)
    with TestClient(app) as client:
        assert client.post("/explain", json={"text": "fine ."}).status_code == 200
    explainer = app.state.explainer._explainer
    assert explainer.predictor.backend.name == "torch"
    assert explainer.predictor.run is app.state.predictor.run
