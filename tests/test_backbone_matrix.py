"""The backbone matrix: every supported architecture through every stage a user runs.

For each tiny random backbone of :mod:`backbones` (its own kind of tokenizer, trained offline
on real rt-polarity lines): build and train → eval on the test split → predict a short and a
long text (the long one read in several windows, each wrapped in the model's own special
tokens) → ONNX export with int8 and its parity report → serve (the app in-process, torch and
int8) and POST /predict. Each stage's outcome goes into a table (architecture by stage)
printed at the end of the session and written to ``backbone_matrix.md`` under pytest's base
temp folder.

The tokenizer trainers of ``tokenizers`` are not reproducible from one process to the next
(WordPiece picks a few different merges, Unigram different scores and ids), so each run's
models differ slightly; the bounds below hold with a wide margin (the table prints the figures).
A failing architecture's backbone and run stay in pytest's temp folder to be looked at.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from backbones import ARCHITECTURES, corpus_lines, save_tiny_backbone
from conftest import (
    LARGEST_TOLERANCE,
    REPO,
    SPREAD_TEXTS,
    assert_split_metrics_consistent,
    tiny_recipe_overrides,
)

pytestmark = pytest.mark.slow

STAGES = ("train", "eval", "predict short", "predict long", "export int8", "serve")
#: Figures shown beside the stages: the trained model's p(pos) range over SPREAD_TEXTS, the
#: long text's windows, int8's label agreement with torch (parity report), wall seconds.
FIGURES = ("p(pos) spread", "long windows", "int8 agree %", "seconds")
SHORT = "a gorgeous, witty, seductive movie."
TEST_SAMPLES = 64  # tiny_recipe_overrides' data.max_test_samples (eval may read all)
PARITY_SAMPLES = 256
#: int8 vs torch logits (test_export allows 0.5 on the tiny run; these models measured < 0.1)
INT8_MAX_LOGIT_DIFF = 0.25

#: architecture -> stage -> "ok" / "FAIL" (stages after a failure stay unrun), and FIGURES.
RESULTS: dict[str, dict[str, str]] = {}


def matrix_table(results: dict[str, dict[str, str]]) -> str:
    """The matrix as a markdown table, one row per architecture that ran."""
    head = ["architecture", *STAGES, *FIGURES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arch in ARCHITECTURES:
        if arch in results:
            row = results[arch]
            cells = [row.get(stage, "not run") for stage in STAGES]
            cells += [row.get(figure, "") for figure in FIGURES]
            lines.append("| " + " | ".join([arch, *cells]) + " |")
    return "\n".join(lines)


@pytest.fixture(scope="module", autouse=True)
def _matrix_report(tmp_path_factory: pytest.TempPathFactory):
    """Writes the module's table to ``<basetemp>/backbone_matrix.md`` when the module ends;
    tests/conftest.py prints it in the terminal summary (from each test's ``backbone_matrix``
    user property, so it shows under xdist too)."""
    yield
    (tmp_path_factory.getbasetemp() / "backbone_matrix.md").write_text(matrix_table(RESULTS) + "\n")


@pytest.fixture(scope="module")
def corpus(rt_dir: Path) -> list[str]:
    return corpus_lines(rt_dir)


def _long_text(corpus: list[str]) -> str:
    """About 250 words of real review sentences, far past one 32-token window."""
    return " ".join(corpus[200:215])


@contextmanager
def _stage(row: dict[str, str], name: str) -> Iterator[None]:
    row[name] = "FAIL"
    yield
    row[name] = "ok"


def _serve(run: Path, backend: str, texts: list[str], tolerance: float) -> np.ndarray:
    """The probabilities (neg, pos) the app answers for ``texts`` in one POST /predict, after
    checking that one text sent alone gets the batch answer's first text (within ``tolerance``)."""
    from fastapi.testclient import TestClient

    from sentiment_hf.serve import create_app

    app = create_app(run, backend=backend, request_log=None)
    with TestClient(app) as client:
        resp = client.post("/predict", json={"texts": texts})
        assert resp.status_code == 200, resp.text
        single = client.post("/predict", json={"text": texts[0]})
        assert single.status_code == 200, single.text
    body = resp.json()
    assert body["backend"] == backend
    rows = [[p["probabilities"][name] for name in ("neg", "pos")] for p in body["predictions"]]
    alone = single.json()["predictions"][0]["probabilities"]
    assert [alone[name] for name in ("neg", "pos")] == pytest.approx(rows[0], abs=tolerance)
    return np.array(rows)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_backbone_runs_every_stage(
    arch: str,
    corpus: list[str],
    rt_dir: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    started = time.perf_counter()  # the first architecture also pays for the imports
    from transformers import AutoConfig, AutoTokenizer

    from sentiment_hf import Predictor, evaluate_model, export_onnx, load_recipe, train
    from sentiment_hf.longtext import LongTextCounts, encode, split_rows
    from sentiment_hf.modeling import dropout_names

    row = RESULTS.setdefault(arch, {})
    try:
        run = tmp_path / "run"
        with _stage(row, "train"):
            backbone = save_tiny_backbone(arch, tmp_path / "backbone", corpus)
            overrides = [
                *tiny_recipe_overrides(backbone, rt_dir, run),
                "policy.calibrate=false",
                "training.bf16=false",
            ]
            result = train(load_recipe(REPO / "recipes" / "base.yaml", overrides))
            assert result.run_dir == run
            # the recipe's model.dropout (base.yaml: 0.15) is every dropout the run was built with
            config = AutoConfig.from_pretrained(run)
            dropouts = {name: getattr(config, name) for name in dropout_names(config)}
            assert dropouts and set(dropouts.values()) == {0.15}, dropouts
            predictor = Predictor(run)
            probs = predictor.predict_proba(SPREAD_TEXTS)[:, 1]
            # a model whose answers are all alike would make every later check vacuous
            row["p(pos) spread"] = f"{float(probs.max() - probs.min()):.3f}"
            assert float(probs.max() - probs.min()) > 0.02, probs
            assert len(np.unique(probs.round(6))) > len(SPREAD_TEXTS) // 2, probs

        with _stage(row, "eval"):
            report = evaluate_model(run, split="test")
            samples = report.metrics["test_samples"]
            assert samples >= TEST_SAMPLES
            assert_split_metrics_consistent(report.metrics, "test", samples)
            saved = json.loads(report.metrics_path.read_text())
            assert saved["test_accuracy"] == report.metrics["test_accuracy"]
            assert report.report_path is not None and report.report_path.is_file()

        with _stage(row, "predict short"):
            counts = LongTextCounts()
            short_logits = predictor.predict_logits([SHORT], counts=counts)
            assert (counts.inputs, counts.windowed, counts.windows) == (1, 0, 1)
            (short,) = predictor.predict([SHORT])
            assert short.label in {"neg", "pos"}

        with _stage(row, "predict long"):
            long_text = _long_text(corpus)
            counts = LongTextCounts()
            long_logits = predictor.predict_logits([long_text], counts=counts)
            row["long windows"] = str(counts.windows)
            assert counts.windowed == 1 and counts.windows > 1, counts
            # each window carries the model's own special tokens ([CLS]…[SEP], <s>…</s>)
            tokenizer = AutoTokenizer.from_pretrained(run)
            specials = tokenizer(SHORT)["input_ids"]
            first, last = specials[0], specials[-1]
            cfg = predictor.long_text
            enc, masks, starts = encode(tokenizer, [long_text], cfg, predictor.max_length)
            rows, _ = split_rows(
                [{"input_ids": enc["input_ids"][0]}],
                masks,
                cfg,
                predictor.max_length,
                sentences=starts,
            )
            assert starts and len(starts[0]) > 3  # the sentences were found in its tokens
            assert len(rows) == counts.windows
            assert all(r["input_ids"][0] == first and r["input_ids"][-1] == last for r in rows)
            assert all(len(r["input_ids"]) <= predictor.max_length for r in rows)
            assert not np.allclose(short_logits, long_logits, atol=1e-4)

        with _stage(row, "export int8"):
            exported = export_onnx(run, quantize="int8", max_samples=PARITY_SAMPLES)
            parity = exported.parity
            assert parity["samples"] == PARITY_SAMPLES
            assert parity["onnx"]["max_abs_logit_diff"] < 1e-4, parity["onnx"]
            assert parity["onnx"]["argmax_agreement_pct"] == 100.0
            # A tiny model trained for 16 steps on 256 reviews stays near chance, so its logit
            # margins are often smaller than int8's error and some labels flip: the logits are
            # what is held close; the agreement only has to be far above a coin's.
            int8 = parity["onnx-int8"]
            row["int8 agree %"] = f"{int8['argmax_agreement_pct']:.1f}"
            assert int8["max_abs_logit_diff"] < INT8_MAX_LOGIT_DIFF, int8
            assert int8["mean_abs_logit_diff"] < INT8_MAX_LOGIT_DIFF / 5, int8
            assert int8["argmax_agreement_pct"] >= 75.0, int8
            assert (run / "model.int8.onnx").is_file() and exported.parity_path.is_file()

        with _stage(row, "serve"):
            texts = [SHORT, long_text, *SPREAD_TEXTS[:6]]
            expected = predictor.predict_proba(texts)
            for backend, tolerance in (("torch", 1e-5), ("onnx-int8", LARGEST_TOLERANCE)):
                # int8 activations are quantized per batch: a text's int8 answer moves a little
                # with its batch neighbours, so it is held to the int8 tolerance, not 1e-5
                served = _serve(run, backend, texts, tolerance)
                np.testing.assert_allclose(served, expected, atol=tolerance, err_msg=backend)
                assert len(np.unique(served[:, 1].round(6))) == len(texts), (backend, served)
    finally:
        row["seconds"] = f"{time.perf_counter() - started:.1f}"
        request.node.user_properties.append(("backbone_matrix", json.dumps({arch: row})))
