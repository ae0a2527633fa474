"""`sentiment serve` as a real uvicorn process on 127.0.0.1, and the page in headless Chromium."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import servers
from conftest import SPREAD_TEXTS

from sentiment_hf.serve import read_requests

CHROMIUM = "/usr/bin/chromium"
REVIEW = "a gorgeous, witty, seductive movie."
# Every server here is stopped with SIGINT, and the page test needs Debian's chromium.
pytestmark = pytest.mark.linux_only


class Server(servers.Server):
    """A `sentiment serve` subprocess logging to ``db``."""

    def __init__(self, model_dir: Path, db: Path, *extra: str) -> None:
        super().__init__(model_dir, "--request-log", str(db), *extra)
        self.db = db


@pytest.fixture(scope="module")
def server(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("uvicorn") / "requests.db"
    srv = Server(tiny_run, db)
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def test_ready_and_predict_over_http(server: Server, tiny_run: Path) -> None:
    from sentiment_hf.inference.predictor import Predictor

    ready = httpx.get(f"{server.url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["backend"] == "torch"
    texts = ["a gorgeous, witty, seductive movie.", "dull, tedious and overlong"]
    resp = httpx.post(f"{server.url}/predict", json={"texts": texts}, timeout=10)
    assert resp.status_code == 200
    expected = Predictor(tiny_run).predict(texts)
    got = resp.json()["predictions"]
    assert [p["label"] for p in got] == [p.label for p in expected]
    for answer, pred in zip(got, expected, strict=True):
        assert answer["probabilities"] == pytest.approx(pred.probabilities, abs=1e-5)


def test_concurrent_requests_each_get_their_own_answer(server: Server, tiny_run: Path) -> None:
    from sentiment_hf.inference.predictor import Predictor

    texts = SPREAD_TEXTS  # 64 texts the fixture guarantees distinct answers for
    expected = [p.probabilities for p in Predictor(tiny_run).predict(texts)]

    def one(i: int) -> tuple[int, dict]:
        resp = httpx.post(f"{server.url}/predict", json={"text": texts[i]}, timeout=30)
        return resp.status_code, resp.json()

    before = _requests_200(server)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(64)))
    assert [status for status, _ in answers] == [200] * 64
    for (_, body), probs in zip(answers, expected, strict=True):  # each answer is its own text's
        got = body["predictions"][0]["probabilities"]
        assert got == pytest.approx(probs, abs=1e-5)
    assert _requests_200(server) == before + 64


def _requests_200(server: Server) -> float:
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    series = 'sentiment_requests_total{endpoint="/predict",method="POST",status="200"} '
    lines = [line for line in metrics.splitlines() if line.startswith(series)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_bad_bytes_over_a_real_socket(server: Server) -> None:
    headers = {"content-type": "application/json"}
    cases = [
        (b'{"text": "\xc3\x28"}', 400),  # invalid UTF-8 sequence
        (b'{"texts": [' + b'"a",' * 20_000 + b'"a"]}', 422),  # 20,001 items
        (b'{"text": "' + b"z" * 2_000_000 + b'"}', 413),
    ]
    for raw, status in cases:
        resp = httpx.post(f"{server.url}/predict", content=raw, headers=headers, timeout=30)
        assert resp.status_code == status, resp.text
    big = (b"x" * 65536 for _ in range(40))  # 2.6 MB streamed without Content-Length
    resp = httpx.post(f"{server.url}/predict", content=big, headers=headers, timeout=30)
    assert resp.status_code == 413
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_page_in_headless_chromium(server: Server, tiny_run: Path) -> None:
    from sentiment_hf.inference.predictor import Predictor

    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.on("request", lambda request: requested.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        page.fill("#text", REVIEW)
        page.click("#submit")
        page.wait_for_selector("#result:not([hidden])", timeout=15_000)
        label = page.text_content("#label")
        score = page.text_content("#score")
        width = page.eval_on_selector("#bar-fill", "el => parseFloat(el.style.width)")
        probs = page.eval_on_selector_all("#probs li", "items => items.map(i => i.textContent)")
        # An empty review shows the API's message instead of a result.
        page.fill("#text", "   ")
        page.eval_on_selector("#form", "form => form.requestSubmit()")
        page.wait_for_selector("#error:not([hidden])", timeout=15_000)
        error_text = page.text_content("#error")
        model = page.text_content("#model")
        browser.close()
    (expected,) = Predictor(tiny_run).predict([REVIEW])
    pct = round(expected.score * 1000) / 10
    assert label == expected.label
    assert score == f"{pct:.1f}% confident"
    assert width == pytest.approx(pct)  # the winning label's probability, as a bar
    assert probs == [f"{name}: {100 * p:.1f}%" for name, p in expected.probabilities.items()]
    assert "empty or whitespace-only" in (error_text or "")
    assert (model or "").startswith("tiny-")
    assert errors == []
    assert requested and all(url.startswith(server.url) for url in requested), requested


def test_bad_model_dir_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentiment_hf.cli import main

    monkeypatch.setattr(sys, "argv", ["sentiment", "serve", str(tmp_path / "nope"), "--port", "0"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model directory") and "\n" not in err


def test_rows_readable_after_the_server_stops(tiny_run: Path, tmp_path: Path) -> None:
    server = Server(tiny_run, tmp_path / "requests.db")  # its own: this test stops it
    texts = [f"logged review {i}: tender and funny" for i in range(25)]
    for i in range(0, 25, 5):
        resp = httpx.post(f"{server.url}/predict", json={"texts": texts[i : i + 5]}, timeout=30)
        assert resp.status_code == 200
    single = httpx.post(f"{server.url}/predict", json={"text": "one more"}, timeout=30).json()
    assert server.stop() == 0  # graceful shutdown flushes the queue
    assert "Application shutdown complete" in "".join(server.lines)
    rows = read_requests(server.db)
    assert [r.text for r in rows[-26:]] == [*texts, "one more"]
    assert rows[-1].label == single["predictions"][0]["label"]
    assert rows[-1].model_version == single["model_version"]
    assert all(r.backend == "torch" and r.latency_ms > 0 for r in rows)
    assert set(rows[0].probabilities) == {"neg", "pos"}
