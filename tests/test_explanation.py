"""Explanations: word offsets, IG completeness, caps, the CLI, POST /explain, the page and the
faithfulness benchmark's helpers, on the tiny run (and a copy with a sharper classifier head)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sentiment_hf.errors import SentimentError
from sentiment_hf.inference.explain import (
    MAX_STEPS,
    MAX_TEXTS,
    Explainer,
    explain,
    whitespace_words,
)
from sentiment_hf.inference.predictor import Predictor

TEXTS = [
    "a gorgeous, witty, seductive movie.",
    "the plot is nothing but boilerplate clichés   from start to finish,",
    "  dull\tand\noverlong  ",
    "effective but too-tepid biopic",
    "great film",
    "it's a 🎬 mess",
]


@pytest.fixture(scope="module")
def sharp_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run with a new random classifier head (std 2): the tiny run's own
    answers stay within ~0.3-0.7, this one's spread over ~0.02-0.98 without saturating (so
    completeness has much to add up and the pad baseline's leftover is measurable)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    out = tmp_path_factory.mktemp("sharp") / "sharp"
    shutil.copytree(tiny_run, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    model = AutoModelForSequenceClassification.from_pretrained(out)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        weight = model.classifier.weight
        weight.copy_(torch.randn(weight.shape, generator=generator) * 2)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def explainer(sharp_run: Path) -> Explainer:
    return Explainer(sharp_run, n_steps=16)


@pytest.fixture(scope="module")
def explained(explainer: Explainer):
    return explainer.explain(TEXTS)


def test_one_entry_per_word_with_character_offsets(explained) -> None:
    assert [e.text for e in explained] == TEXTS
    for item in explained:
        expected = [w for w, _, _ in whitespace_words(item.text)]
        assert [w.word for w in item.words] == expected
        for w in item.words:
            assert item.text[w.start : w.end] == w.word
        assert not item.truncated and item.n_steps == 16 and item.baseline == "special"
    assert [w.word for w in explained[2].words] == ["dull", "and", "overlong"]
    assert explained[2].words[0].start == 2


def test_completeness_words_add_up_to_the_change(explained) -> None:
    changes = []
    for item in explained:
        change = item.score - item.baseline_score
        total = sum(w.attribution for w in item.words)
        assert abs(total - change) <= abs(item.delta) + 1e-5, (item.text, total, change)
        changes.append(abs(change))
    assert max(changes) > 1e-3  # not a trivial zero-equals-zero check


def test_pad_baseline_converges_but_puts_attribution_on_special_tokens(sharp_run: Path) -> None:
    items = explain(sharp_run, TEXTS[:2], n_steps=16, baseline="pad")
    for item in items:
        assert abs(item.delta) < 1e-4
        assert item.baseline == "pad"
        outside = item.score - item.baseline_score - sum(w.attribution for w in item.words)
        assert abs(outside) > 100 * abs(item.delta)  # [CLS]/[SEP] carry part of the change


def test_label_and_score_are_the_predictors(explained, sharp_run: Path) -> None:
    preds = Predictor(sharp_run).predict(TEXTS)
    for item, pred in zip(explained, preds, strict=True):
        assert item.label == pred.label and item.target == pred.label
        assert item.score == pytest.approx(pred.score, abs=1e-6)
        assert item.abstained is False


def test_abstention_explains_the_label_it_would_have_chosen(sharp_run: Path, tmp_path) -> None:
    run = tmp_path / "abstains"
    shutil.copytree(sharp_run, run)
    (run / "policy.json").write_text(json.dumps({"temperature": 1.0, "min_confidence": 1.0}))
    [item] = explain(run, ["great film"], n_steps=4)
    assert item.abstained and item.label == "uncertain" and item.target in ("neg", "pos")


def test_long_input_is_truncated_to_max_length(explainer: Explainer) -> None:
    text = " ".join(f"word{i}" for i in range(200))
    [item] = explainer.explain([text])
    assert item.truncated and item.tokens == explainer.predictor.max_length == 32
    assert 0 < len(item.words) < 200
    assert [w.word for w in item.words] == text.split()[: len(item.words)]


@pytest.mark.parametrize(
    ("texts", "kwargs", "needle"),
    [
        ([], {}, "no input texts"),
        (["ok"] * (MAX_TEXTS + 1), {}, f"the cap is {MAX_TEXTS} per call"),
        (["ok", "  "], {}, "input 1 is empty or whitespace-only"),
        (["ok", 3], {}, "input 1 is int, not a string"),
        (["ok"], {"n_steps": 0}, f"between 1 and {MAX_STEPS}"),
        (["ok"], {"n_steps": MAX_STEPS + 1}, f"between 1 and {MAX_STEPS}"),
        (["ok"], {"baseline": "zeros"}, "unknown baseline 'zeros'"),
        (["ok"], {"aggregate": "max"}, "unknown aggregate 'max'"),
        (["x" * 100_001], {}, "the cap is 100000"),
    ],
)
def test_bad_input_is_a_clear_error(tiny_run: Path, texts, kwargs, needle: str) -> None:
    with pytest.raises(SentimentError, match=needle.replace("(", r"\(")) as exc:
        explain(tiny_run, texts, **kwargs)
    assert "\n" not in str(exc.value)


def test_needs_the_torch_backend(tiny_run: Path) -> None:
    predictor = Predictor(tiny_run)
    predictor.backend.name = "onnx"  # what an ONNX predictor reports
    with pytest.raises(SentimentError, match="torch backend"):
        Explainer(predictor)


# ---------------------------------------------------------------------------------- CLI
def test_cli_json_lines(sharp_run: Path) -> None:
    from sentiment_hf.cli import app

    args = ["explain", str(sharp_run), "--json", "--n-steps", "8", *TEXTS[:2]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["text"] for r in rows] == TEXTS[:2]
    second = rows[0]["words"][1]
    assert (second["word"], second["start"], second["end"]) == ("gorgeous,", 2, 11)
    assert rows[0]["n_steps"] == 8 and rows[0]["label"] in ("neg", "pos")


def test_cli_colours_words(sharp_run: Path) -> None:
    from sentiment_hf.cli import app

    args = ["explain", str(sharp_run), "--n-steps", "8", TEXTS[0]]
    coloured = CliRunner().invoke(app, [*args, "--color"])
    assert coloured.exit_code == 0, coloured.output
    assert "\x1b[48;5;46m" in coloured.stdout or "\x1b[48;5;196m" in coloured.stdout
    plain = CliRunner().invoke(app, [*args, "--no-color"])
    assert "\x1b[" not in plain.stdout
    head, text, top = plain.stdout.splitlines()
    assert head.split("\t")[0] in ("neg", "pos") and text == TEXTS[0]
    assert top.startswith("  top: ") and "delta" in top


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["__RUN__", "ok", ""], "input 1 is empty or whitespace-only"),
        (["__RUN__", *["ok"] * (MAX_TEXTS + 1)], f"the cap is {MAX_TEXTS}"),
        (["__RUN__", "ok", "--baseline", "zeros"], "unknown baseline"),
        (["__TMP__", "ok"], "is not a trained model directory"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    args, needle, tiny_run: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from sentiment_hf.cli import main

    subs = {"__RUN__": str(tiny_run), "__TMP__": str(tmp_path)}
    monkeypatch.setattr(sys, "argv", ["sentiment", "explain", *[subs.get(a, a) for a in args]])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], errors


# ------------------------------------------------------------------------------- server
@pytest.fixture(scope="module")
def client(sharp_run: Path):
    from sentiment_hf.serve import create_app

    app = create_app(sharp_run, request_log=None, max_text_chars=200, max_body_bytes=10_000)
    with TestClient(app) as client:
        yield client


def test_explain_endpoint(client: TestClient, explained) -> None:
    resp = client.post("/explain", json={"text": TEXTS[0]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["label"] == explained[0].label
    # explained alone here, in a padded batch of five there: fp32 moves it by ~2e-6
    assert body["score"] == pytest.approx(explained[0].score, abs=1e-5)
    assert body["model_version"].startswith("sharp-")
    assert [w["word"] for w in body["words"]] == TEXTS[0].split()
    assert body["n_steps"] == 32 and body["baseline"] == "special"
    total = sum(w["attribution"] for w in body["words"])
    assert total == pytest.approx(body["score"] - body["baseline_score"], abs=1e-4)
    metrics = client.get("/metrics").text
    assert 'endpoint="/explain",method="POST",status="200"' in metrics


def test_explain_runs_off_the_event_loop(client: TestClient, explained, monkeypatch) -> None:
    service = client.app.state.explainer
    entered, release = threading.Event(), threading.Event()

    def slow(text: str):
        entered.set()
        assert release.wait(30)
        return explained[0]

    monkeypatch.setattr(service, "_explain", slow)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/explain", json={"text": TEXTS[0]})
        assert entered.wait(30), "/explain never reached the explainer"
        assert client.get("/health").status_code == 200  # the loop is free while it explains
        assert not pending.done()
        release.set()
        assert pending.result(timeout=30).status_code == 200


J = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("raw", "status", "needle"),
    [
        (b'{"text": ""}', 422, "empty or whitespace-only"),
        (b'{"text": "   "}', 422, "empty or whitespace-only"),
        (b'{"text": "' + b"x" * 201 + b'"}', 422, "at most 200 characters"),
        (b'{"text": "' + b"x" * 20_000 + b'"}', 413, "limit is 10000 bytes"),
        (b'{"text": 3}', 422, "valid string"),
        (b'{"text": ["a"]}', 422, "valid string"),
        (b'{"text": null}', 422, "valid string"),
        (b"{}", 422, "Field required"),
        (b'{"texts": ["a"]}', 422, "Field required"),
        (b'{"text": "ok", "n_steps": 999}', 422, "Extra inputs"),
        (b"[]", 422, "JSON object"),
        (b'{"text": "unterminated', 422, "not valid JSON"),
        (b"", 422, "invalid request"),
    ],
)
def test_explain_bad_bodies_are_4xx(client: TestClient, raw: bytes, status: int, needle) -> None:
    resp = client.post("/explain", content=raw, headers=J)
    assert resp.status_code == status, resp.text
    assert needle in resp.json()["detail"]


def test_onnx_server_explains_with_a_torch_model(tiny_run: Path) -> None:
    from sentiment_hf.serve.app import ExplainService
    from sentiment_hf.serve.config import ServeConfig

    config = ServeConfig(model_dir=tiny_run, backend="onnx", request_log=None)
    item = asyncio.run(ExplainService(config, predictor=None).explain("great film"))
    assert [w.word for w in item.words] == ["great", "film"]


@pytest.mark.slow
@pytest.mark.linux_only  # Debian's chromium
def test_page_why_section_in_headless_chromium(sharp_run: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright
    from test_serve_uvicorn import CHROMIUM, Server

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package")
    server = Server(sharp_run, tmp_path / "requests.db")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "/")
            page.fill("#text", TEXTS[1])
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden])", timeout=15_000)
            page.click("#why-button")
            page.wait_for_selector("#why:not([hidden])", timeout=30_000)
            shown = page.text_content("#why")
            words = page.eval_on_selector_all("#why span", "s => s.map(e => e.textContent)")
            coloured = page.eval_on_selector_all(
                "#why span", "s => s.filter(e => e.style.background).length"
            )
            note = page.text_content("#why-note")
            browser.close()
    finally:
        server.stop()
    assert shown == TEXTS[1]
    assert words == TEXTS[1].split()
    assert coloured >= 1
    assert "pushed towards" in (note or "")
    assert errors == []


# ---------------------------------------------------------------------------- benchmark
@pytest.fixture(scope="module")
def faithfulness():
    spec = importlib.util.spec_from_file_location(
        "faithfulness", REPO / "benchmarks" / "faithfulness.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deletion_removes_the_requested_share_of_words(faithfulness, explained) -> None:
    assert [faithfulness.deletion_count(n) for n in (1, 2, 5, 10, 12, 0)] == [1, 1, 1, 2, 2, 0]
    rng = np.random.default_rng(0)
    for item in explained:
        n = len(item.words)
        k = faithfulness.deletion_count(n)
        top = faithfulness.top_words(item)
        random = faithfulness.random_words(item, rng)
        assert len(top) == len(random) == k
        best = max(range(n), key=lambda i: item.words[i].attribution)
        assert best in top
        kept = faithfulness.delete_words(item.text, top).split()
        assert kept == [w.word for i, w in enumerate(item.words) if i not in top]
        assert len(kept) == n - k


def test_comprehensiveness_on_a_few_sentences(faithfulness, explainer, explained) -> None:
    scores = faithfulness.comprehensiveness(explainer.predictor, explained, draws=2, seed=0)
    assert set(scores) == {"mean_drop_top", "mean_drop_random", "ratio"}
    assert scores["mean_drop_top"] > scores["mean_drop_random"]
    assert faithfulness.outside_words(explained) < 1e-4
