"""Long inputs: windows, aggregation, the cap, the recipe field, and every consumer of them."""

from __future__ import annotations

import csv
import itertools
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from sentiment_hf.config.recipe import load_recipe, recipe_from_dict
from sentiment_hf.errors import SentimentError
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.longtext import (
    LongTextConfig,
    LongTextCounts,
    WindowCapExceeded,
    aggregate_logits,
    count_windows,
    split_row,
    window_starts,
    window_stride,
)
from sentiment_hf.rundir import RECIPE_FILE, RunDir

REPO = Path(__file__).resolve().parents[1]
CLS, SEP = 101, 102
LOGIT_SCALE = 30.0  # the tiny run's logits (~0.1-1) to ~3-30: float error stays ~1e-5
#: Same logits up to float error (batching, padding, torch vs ONNX: ~1e-5 measured) at that scale.
SAME = 1e-4


def _row(n: int) -> tuple[dict[str, list[int]], list[int]]:
    """A BERT-like encoded input of ``n`` content tokens (ids 1000..) and its special mask."""
    ids = [CLS, *range(1000, 1000 + n), SEP]
    row = {"input_ids": ids, "attention_mask": [1] * len(ids), "token_type_ids": [0] * len(ids)}
    return row, [1] + [0] * n + [1]


def _windows(
    tokenizer: Any, texts: list[str], cfg: LongTextConfig, max_length: int = 32
) -> tuple[list[dict[str, list[int]]], np.ndarray]:
    """The model rows the long-text policy ``cfg`` reads for ``texts`` (``max_windows`` not
    enforced), and each row's text: what inference reads, for comparing training with it."""
    from sentiment_hf.longtext import encode, split_rows

    enc, masks, starts = encode(tokenizer, texts, cfg, max_length)
    rows = [{k: enc[k][i] for k in enc} for i in range(len(texts))]
    return split_rows(rows, masks, cfg, max_length, strict=False, sentences=starts)


# ------------------------------------------------------------------ windows (no model)
@pytest.mark.parametrize(("n", "stride"), [(30, 22), (31, 22), (53, 22), (100, 10), (97, 30)])
def test_windows_cover_every_token_with_the_configured_overlap(n: int, stride: int) -> None:
    row, mask = _row(n)
    cfg = LongTextConfig(mode="window", cut="tokens", stride=stride, max_windows=100)
    windows = split_row(row, mask, cfg, max_length=32)
    content = 30
    assert len(windows) == count_windows(n, content, stride)
    seen: list[int] = []
    starts = []
    for w in windows:
        assert len(w["input_ids"]) <= 32
        assert w["input_ids"][0] == CLS and w["input_ids"][-1] == SEP  # specials re-added
        assert len(w["attention_mask"]) == len(w["token_type_ids"]) == len(w["input_ids"])
        body = w["input_ids"][1:-1]
        assert body == list(range(body[0], body[0] + len(body)))  # contiguous
        starts.append(body[0] - 1000)
        seen += body
    assert set(seen) == set(range(1000, 1000 + n))  # every token read
    if n > content:
        assert all(len(w["input_ids"]) == 32 for w in windows)  # the last window is full too
        steps = np.diff(starts)
        assert (steps[:-1] == stride).all() and 0 < steps[-1] <= stride
        assert starts[-1] == n - content
    assert starts == window_starts(n, content, stride)


def test_default_stride_is_three_quarters_of_a_window() -> None:
    assert window_stride(LongTextConfig(), 62) == 46
    assert window_stride(LongTextConfig(stride=10), 62) == 10
    with pytest.raises(SentimentError, match="more than a window's 30 text tokens"):
        window_stride(LongTextConfig(stride=31), 30)


def test_short_inputs_and_truncate_mode_give_one_row() -> None:
    row, mask = _row(30)
    assert split_row(row, mask, LongTextConfig(), 32) == [row]
    long_row, long_mask = _row(80)
    (cut,) = split_row(long_row, long_mask, LongTextConfig(mode="truncate"), 32)
    assert cut["input_ids"] == [CLS, *range(1000, 1030), SEP]


def test_past_the_cap_is_a_specific_error_unless_not_strict() -> None:
    row, mask = _row(200)
    cfg = LongTextConfig(cut="tokens", stride=20, max_windows=3)
    needed = count_windows(200, 30, 20)
    with pytest.raises(WindowCapExceeded, match=rf"input 7 .* needs {needed} windows.*cap is 3"):
        split_row(row, mask, cfg, 32, index=7)
    assert issubclass(WindowCapExceeded, SentimentError)
    kept = split_row(row, mask, cfg, 32, strict=False)
    assert [w["input_ids"][1] - 1000 for w in kept] == [0, 20, 40]


def test_sentence_windows_pack_whole_sentences_and_read_every_token_once(
    tiny_run: Path,
) -> None:
    """``cut: sentences``: each window ends where a sentence does (``.``/``!``/``?`` with closing
    quotes, a line break, a ``<br />`` whose tokens are dropped) and holds as many whole
    sentences as fit; a sentence longer than a window is cut at the window's length; windows
    never overlap and read every other token once."""
    from transformers import AutoTokenizer

    from sentiment_hf.longtext import encode, split_rows
    from sentiment_hf.sentences import MARKUP, sentence_windows

    tokenizer = AutoTokenizer.from_pretrained(tiny_run)
    sentences = [  # as the rule cuts them, each with what follows it
        "The plot drags. ",
        'Still, the lead is "superb!" ',
        "Would I see it again? ",
        "Yes<br /><BR>",
        "twice, and the score stays with you\n",
        "long after. ",
        " ".join(["an endless sentence that keeps going without a stop"] * 4) + " ",
        "Fine.",
    ]
    text = "".join(sentences)
    cfg = LongTextConfig(cut="sentences")
    enc, masks, starts = encode(tokenizer, [text, "Short."], cfg, 32)
    assert starts is not None and starts[1] == []  # a text that fits needs no boundaries
    rows = [{k: enc[k][i] for k in enc} for i in range(2)]
    windows, owner = split_rows(rows, masks, cfg, 32, sentences=starts)
    assert owner.tolist() == [0] * (len(windows) - 1) + [1] and windows[-1] == rows[1]
    bodies = [w["input_ids"][1:-1] for w in windows[:-1]]
    assert all(w["input_ids"][0] == CLS and w["input_ids"][-1] == SEP for w in windows)
    assert [t for b in bodies for t in b] == enc["input_ids"][0][1:-1]  # each token once, in order
    plain = tokenizer(MARKUP.sub(" ", text))["input_ids"][1:-1]  # the text without its tags
    assert enc["input_ids"][0][1:-1] == plain and "<" not in tokenizer.decode(plain)
    assert len(tokenizer(text)["input_ids"]) - len(plain) - 2 == 4 + 3  # "< br / >", "< br >"
    assert all(len(b) <= 30 for b in bodies)
    pieces = [tokenizer.decode(b) for b in bodies]
    sizes = [
        len(tokenizer(MARKUP.sub(" ", p), add_special_tokens=False)["input_ids"]) for p in sentences
    ]
    edges = [0, *np.cumsum(sizes).tolist()]
    assert edges[-1] == len(enc["input_ids"][0]) - 2
    starts_at = [0, *np.cumsum([len(b) for b in bodies]).tolist()]
    long_start, long_end = edges[6], edges[7]
    assert long_end - long_start > 30  # the long sentence needs cutting
    for begin, end in itertools.pairwise(starts_at[:-1]):
        if end in edges:  # greedy: the sentence after this window would not have fitted in it
            assert edges[edges.index(end) + 1] - begin > 30, pieces
        else:  # or cut inside the over-long sentence, a window's length after it began
            assert long_start <= begin < end < long_end and end - begin == 30, pieces
    assert pieces[0].startswith("the plot drags.")
    assert sentence_windows(10, 4, [2, 3, 8]) == [(0, 3), (3, 7), (7, 10)]


def test_sentence_windows_need_a_fast_tokenizer(tiny_run: Path, tmp_path: Path) -> None:
    """A pure-Python tokenizer has no character offsets: one clear error, token windows work."""
    from transformers import AutoTokenizer
    from transformers.models.bert import BertTokenizerLegacy

    from sentiment_hf.longtext import check_tokenizer

    vocab = AutoTokenizer.from_pretrained(tiny_run).get_vocab()
    (tmp_path / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n")
    slow = BertTokenizerLegacy(vocab_file=str(tmp_path / "vocab.txt"))
    assert not slow.is_fast
    with pytest.raises(SentimentError, match="cut: sentences needs a fast tokenizer"):
        check_tokenizer(LongTextConfig(cut="sentences"), slow)
    check_tokenizer(LongTextConfig(cut="tokens"), slow)


def test_mean_and_max_aggregation_match_hand_computed_logits() -> None:
    logits = np.array([[1.0, -1.0], [3.0, 0.0], [0.5, 0.5], [-2.0, 4.0], [0.0, 1.0]])
    owner = np.array([0, 0, 1, 2, 2])
    mean = aggregate_logits(logits, owner, 3, "mean")
    np.testing.assert_allclose(mean, [[2.0, -0.5], [0.5, 0.5], [-1.0, 2.5]])
    top = aggregate_logits(logits, owner, 3, "max")
    np.testing.assert_allclose(top, [[3.0, 0.0], [0.5, 0.5], [0.0, 4.0]])


# ------------------------------------------------------------------ recipe
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.long_text.mode=chunks", r"model\.long_text\.mode: must be one of"),
        ("model.long_text.aggregate=median", r"model\.long_text\.aggregate: must be one of"),
        ("model.long_text.train=some", r"model\.long_text\.train: must be one of"),
        ("model.long_text.cut=words", r"model\.long_text\.cut: must be one of"),
        ("model.long_text.stride=0", r"model\.long_text\.stride: must be a whole number >= 1"),
        ("model.long_text.max_windows=0", r"model\.long_text\.max_windows: must be"),
        ("model.long_text.stride=64", r"stride: 64 tokens is not below model\.max_length \(64\)"),
        ("model.long_text.window=3", r"model\.long_text: unknown key 'window'"),
    ],
)
def test_bad_long_text_settings_are_one_clear_error(override: str, message: str) -> None:
    with pytest.raises(SentimentError, match=message):
        load_recipe(REPO / "recipes" / "base.yaml", [override])


def test_recipe_round_trips_and_old_runs_get_the_schema_default(tiny_run: Path) -> None:
    recipe = load_recipe(
        REPO / "recipes" / "base.yaml",
        ["model.long_text.aggregate=max", "model.long_text.stride=20"],
    )
    again = recipe_from_dict(yaml.safe_load(recipe.to_yaml()))
    assert again.model.long_text == LongTextConfig(aggregate="max", stride=20)
    assert RunDir.open(tiny_run).long_text == LongTextConfig()  # trained with the default
    old = yaml.safe_load((tiny_run / RECIPE_FILE).read_text())
    del old["model"]["long_text"]  # a run written before the field existed
    assert recipe_from_dict(old).model.long_text == LongTextConfig()


# ------------------------------------------------------------------ runs with a policy
def _with_long_text(run: Path, out: Path, **fields: object) -> Path:
    """A copy of ``run`` whose recipe.yaml sets ``model.long_text`` fields."""
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    recipe = yaml.safe_load((out / RECIPE_FILE).read_text())
    recipe["model"]["long_text"].update(fields)
    (out / RECIPE_FILE).write_text(yaml.safe_dump(recipe, sort_keys=False))
    return out


@pytest.fixture(scope="module")
def long_texts(rt_dir: Path) -> dict[str, list]:
    """Real reviews made long: 1 to 12 rt-polarity sentences of one class joined per text."""
    from sentiment_hf.data.load import read_rt_polarity

    train = read_rt_polarity(rt_dir)["train"]
    pos = [t for t, y in zip(train["text"], train["label"], strict=True) if y == 1]
    neg = [t for t, y in zip(train["text"], train["label"], strict=True) if y == 0]
    texts, labels = [], []
    for i in range(48):
        source, label = (pos, "pos") if i % 2 else (neg, "neg")
        k = (1, 1, 2, 4, 8, 12)[i % 6]
        pool = source[i * 12 : i * 12 + 12]
        texts.append(min(pool, key=len) if k == 1 else " ".join(pool[:k]))
        labels.append(label)
    return {"text": texts, "label": labels}


@pytest.fixture(scope="module")
def long_data(long_texts: dict[str, list], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/validation/test CSVs of the long texts (32 / 8 / 8 rows)."""
    out = tmp_path_factory.mktemp("long-data")
    for split, (lo, hi) in {"train": (0, 32), "validation": (32, 40), "test": (40, 48)}.items():
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for i in range(lo, hi):
                writer.writerow([long_texts["text"][i], long_texts["label"][i]])
    return out


@pytest.fixture(scope="module")
def exported_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run (token windows, stride 11) with model.onnx; its classifier weights
    are scaled up so that windows change the logits far beyond float error."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from sentiment_hf.export.onnx import export_onnx

    out = _with_long_text(tiny_run, tmp_path_factory.mktemp("lt") / "run", cut="tokens", stride=11)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    with torch.no_grad():
        model.classifier.weight.mul_(LOGIT_SCALE)
    model.save_pretrained(out)
    export_onnx(out, max_samples=32)
    return out


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predictor_aggregates_the_logits_of_every_window_before_calibration(
    exported_run: Path, long_texts: dict[str, list], backend: str
) -> None:
    texts = long_texts["text"][:12]
    for aggregate in ("mean", "max"):
        cfg = LongTextConfig(cut="tokens", stride=11, aggregate=aggregate)
        predictor = Predictor(exported_run, backend=backend, long_text=cfg, batch_size=5)
        enc = predictor.tokenizer(texts, return_special_tokens_mask=True)
        expected, first = [], []
        for i in range(len(texts)):
            row = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")}
            windows = split_row(row, enc["special_tokens_mask"][i], cfg, predictor.max_length)
            rows = [predictor.backend({k: np.array([w[k]]) for k in w})[0] for w in windows]
            expected.append(np.mean(rows, 0) if aggregate == "mean" else np.max(rows, 0))
            first.append(rows[0])
        counts = LongTextCounts()
        logits = predictor.predict_logits(texts, counts)
        np.testing.assert_allclose(logits, np.array(expected), atol=SAME)
        lengths = [len(ids) for ids in enc["input_ids"]]
        windowed = np.array(lengths) > predictor.max_length
        # the windows matter: a windowed text's answer is not its first window's
        assert (np.abs(logits - np.array(first)).max(1)[windowed] > 20 * SAME).all()
        np.testing.assert_allclose(
            predictor.predict_proba(texts), predictor.policy.probabilities(logits), atol=1e-6
        )
        assert counts.inputs == len(texts)
        assert counts.windowed == windowed.sum() > 0
        assert counts.windows == sum(count_windows(n - 2, 30, 11) for n in lengths)
        assert counts.truncated == 0


def test_window_logits_are_the_rows_predict_logits_combines(
    exported_run: Path, long_texts: dict[str, list]
) -> None:
    """Every window's own logits, in reading order per text: what a rule of one's own reads."""
    texts = long_texts["text"][:12]
    predictor = Predictor(exported_run, batch_size=5)
    logits, owner = predictor.window_logits(texts)
    lengths = [len(ids) for ids in predictor.tokenizer(texts)["input_ids"]]
    expected = [count_windows(n - 2, 30, 11) for n in lengths]
    assert np.bincount(owner, minlength=len(texts)).tolist() == expected and max(expected) > 2
    assert (np.diff(owner) >= 0).all()
    np.testing.assert_allclose(
        aggregate_logits(logits, owner, len(texts)), predictor.predict_logits(texts), atol=1e-6
    )
    longest = int(np.argmax(expected))
    enc = predictor.tokenizer(texts[longest], return_special_tokens_mask=True)
    row = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    cfg = predictor.long_text
    windows = split_row(row, enc["special_tokens_mask"], cfg, predictor.max_length)
    alone = [predictor.backend({k: np.array([w[k]]) for k in w})[0] for w in windows]
    np.testing.assert_allclose(logits[owner == longest], np.array(alone), atol=SAME)


def test_onnx_matches_torch_in_window_mode(exported_run: Path, long_texts: dict[str, list]) -> None:
    texts = long_texts["text"][:16]
    torch_logits = Predictor(exported_run, device="cpu").predict_logits(texts)
    onnx_logits = Predictor(exported_run, backend="onnx").predict_logits(texts)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=SAME)
    cut = Predictor(exported_run, long_text=LongTextConfig(mode="truncate")).predict_logits(texts)
    assert np.abs(cut - torch_logits).max() > 20 * SAME  # windows and truncation differ


@pytest.mark.parametrize("cut", ["tokens", "sentences"])
def test_every_path_gives_a_long_text_the_same_document_answer(
    cut: str,
    exported_run: Path,
    long_texts: dict[str, list],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One rule for long texts everywhere: predict (texts and files), the server, eval and the
    ONNX backend give each windowed review the label and probabilities the library gives it,
    with windows of tokens and of sentences alike."""
    from cli_inprocess import run_main

    from sentiment_hf.evaluation.evaluate import evaluate_model
    from sentiment_hf.serve import create_app

    texts, truth = long_texts["text"][:24], long_texts["label"][:24]
    if cut == "sentences":
        tokens = Predictor(exported_run).predict_logits(texts)
        exported_run = _with_long_text(exported_run, tmp_path / "run", cut="sentences")
        sentences = Predictor(exported_run).predict_logits(texts)
        assert np.abs(sentences - tokens).max() > 20 * SAME  # other windows, other answers
    reference = Predictor(exported_run, device="cpu").predict(texts)
    probs = np.array([list(p.probabilities.values()) for p in reference])
    labels = [p.label for p in reference]
    lengths = [len(ids) for ids in Predictor(exported_run).tokenizer(texts)["input_ids"]]
    windowed = [i for i, n in enumerate(lengths) if n > 32]
    assert len(windowed) >= 8 and len(set(labels)) == 2  # long inputs, both answers

    def same(answers: list[dict], where: str, atol: float = 1e-5) -> None:
        # 1e-5: other batches pad sentence windows of other lengths (float error ~1e-6)
        assert [a["label"] for a in answers] == labels, where
        got = np.array([list(a["probabilities"].values()) for a in answers])
        np.testing.assert_allclose(got, probs, atol=atol, err_msg=where)

    shown = run_main(["predict", str(exported_run), "--json", *texts], capsys, monkeypatch)
    assert shown.code == 0, shown.stderr
    same([json.loads(line) for line in shown.stdout.splitlines()], "predict TEXT...")

    data = tmp_path / "test.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, truth, strict=True))
    out = tmp_path / "scored.jsonl"
    filed = run_main(
        ["predict", str(exported_run), "--file", str(data), "--output", str(out)],
        capsys,
        monkeypatch,
    )
    assert filed.code == 0, filed.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["label"] for r in rows] == labels  # on the backend the run's stamp picks
    np.testing.assert_allclose([r["score"] for r in rows], probs.max(1), atol=SAME)

    with TestClient(create_app(exported_run, request_log=None)) as client:
        resp = client.post("/predict", json={"texts": texts})
        assert resp.status_code == 200, resp.text
        same(resp.json()["predictions"], "POST /predict")

    onnx = Predictor(exported_run, backend="onnx").predict(texts)
    same([p.to_dict() for p in onnx], "onnx backend", atol=SAME)

    report = evaluate_model(exported_run, data=str(data), output_dir=tmp_path / "eval")
    wrong = [i for i, (got, want) in enumerate(zip(labels, truth, strict=True)) if got != want]
    assert 0 < len(wrong) < len(texts)  # the mistakes file has rows to compare
    assert report.metrics["test_accuracy"] == pytest.approx(1 - len(wrong) / len(texts))
    with open(report.errors_path, encoding="utf-8") as handle:
        mistakes = list(csv.DictReader(handle))
    assert [int(m["index"]) for m in mistakes] == wrong
    for m in mistakes:
        i = int(m["index"])
        assert m["predicted"] == labels[i]
        assert float(m["score"]) == pytest.approx(probs[i].max(), abs=1e-4)


def test_server_answers_413_past_the_cap(
    tiny_run: Path, tmp_path: Path, long_texts: dict[str, list]
) -> None:
    run = _with_long_text(tiny_run, tmp_path / "capped", max_windows=2, cut="tokens")
    longest = max(long_texts["text"], key=len)
    from sentiment_hf.serve import create_app

    with TestClient(create_app(run, request_log=None)) as client:
        resp = client.post("/predict", json={"texts": ["fine .", longest]})
        assert resp.status_code == 413, resp.text
        detail = resp.json()["detail"]
        assert "input 1" in detail and "cap is 2 windows" in detail and "max_windows" in detail
        ok = client.post("/predict", json={"text": long_texts["text"][1]})  # 2 sentences
        assert ok.status_code == 200, ok.text
    page = (REPO / "sentiment_hf" / "serve" / "static" / "index.html").read_text()
    assert "body.detail" in page  # the page shows the server's message


def test_eval_reports_windowed_and_truncated_inputs(
    tiny_run: Path, tmp_path: Path, long_data: Path
) -> None:
    from transformers import AutoTokenizer

    from sentiment_hf.evaluation.evaluate import evaluate_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_run)
    with open(long_data / "test.csv", encoding="utf-8") as handle:
        texts = [r["text"] for r in csv.DictReader(handle)]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    long = sum(n > 32 for n in lengths)
    assert 0 < long < len(texts)
    window = evaluate_model(tiny_run, data=str(long_data), output_dir=tmp_path / "w")
    assert window.metrics["test_inputs_windowed"] == long
    assert window.metrics["test_inputs_truncated"] == 0
    assert window.metrics["test_windows"] == len(_windows(tokenizer, texts, LongTextConfig())[0])
    saved = json.loads(window.metrics_path.read_text())
    assert saved["test_inputs_windowed"] == long
    assert f"window (sentences), mean: {long} of {len(texts)} inputs windowed" in (
        window.report_path.read_text()
    )
    run = _with_long_text(tiny_run, tmp_path / "trunc", mode="truncate")
    cut = evaluate_model(run, data=str(long_data), output_dir=tmp_path / "t")
    assert cut.metrics["test_inputs_truncated"] == long
    assert cut.metrics["test_inputs_windowed"] == 0
    assert cut.metrics["test_windows"] == len(texts)


def test_eval_and_files_read_an_over_long_text_up_to_the_cap(
    tiny_run: Path,
    tmp_path: Path,
    long_data: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cap protects the server (413); eval and --file read such a text's first
    ``max_windows`` windows, count it, and score every other row."""
    from cli_inprocess import run_main

    from sentiment_hf.evaluation.evaluate import evaluate_model

    run = _with_long_text(tiny_run, tmp_path / "capped", max_windows=2, cut="tokens")
    with open(long_data / "test.csv", encoding="utf-8") as handle:
        texts = [r["text"] for r in csv.DictReader(handle)]
    predictor = Predictor(run)
    enc = predictor.tokenizer(texts, return_special_tokens_mask=True)
    needed = [count_windows(len(ids) - 2, 30, 22) for ids in enc["input_ids"]]
    capped = [i for i, n in enumerate(needed) if n > 2]
    assert 0 < len(capped) < len(texts)
    with pytest.raises(WindowCapExceeded):  # the library's default stays strict (the server)
        predictor.predict_logits(texts)
    counts = LongTextCounts()
    logits = predictor.predict_logits(texts, counts, strict=False)
    assert counts.capped == len(capped) and counts.windows == sum(min(n, 2) for n in needed)
    cfg = predictor.long_text
    for i in capped:  # the mean of exactly its first two windows
        row = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")}
        windows = split_row(row, enc["special_tokens_mask"][i], cfg, 32, strict=False)
        assert len(windows) == 2
        rows = [predictor.backend({k: np.array([w[k]]) for k in w})[0] for w in windows]
        np.testing.assert_allclose(logits[i], np.mean(rows, 0), atol=SAME)

    report = evaluate_model(run, data=str(long_data), output_dir=tmp_path / "eval")
    assert report.metrics["test_samples"] == len(texts)
    assert report.metrics["test_inputs_capped"] == len(capped)
    assert json.loads(report.metrics_path.read_text())["test_inputs_capped"] == len(capped)
    page = report.report_path.read_text()
    assert f"{len(capped)} text(s) read only up to their first 2 windows" in page

    lines = tmp_path / "long.txt"
    lines.write_text("\n".join(texts) + "\n", encoding="utf-8")
    shown = run_main(["predict", str(run), "--file", str(lines), "--json"], capsys, monkeypatch)
    assert shown.code == 0, shown.stderr
    assert [json.loads(line)["text"] for line in shown.stdout.splitlines()] == texts
    assert f"{len(capped)} text(s) read only up to their first 2 windows" in shown.stderr
    out = tmp_path / "scored.jsonl"
    filed = run_main(
        [
            "predict",
            str(run),
            "--file",
            str(long_data / "test.csv"),
            "--output",
            str(out),
            "--backend",
            "torch",
        ],
        capsys,
        monkeypatch,
    )
    assert filed.code == 0, filed.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(texts)
    assert f"{len(capped)} text(s) read only up to their first 2 windows" in filed.stderr


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("cut", ["tokens", "sentences"])
def test_train_all_gives_every_window_of_a_long_text_its_label(
    cut: str, tiny_backbone: Path, long_data: Path, tmp_path: Path
) -> None:
    """``train: all``: the training rows are exactly the windows inference reads, in order,
    each with its text's label."""
    from transformers import AutoTokenizer

    from sentiment_hf.config.recipe import DataConfig
    from sentiment_hf.data.load import load_splits
    from sentiment_hf.data.tokenize import tokenize_splits

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    data = load_splits(DataConfig(source=str(long_data)))
    first = tokenize_splits(data, tokenizer, 32, cache_dir=tmp_path, long_text=LongTextConfig())
    cfg = LongTextConfig(cut=cut, train="all")
    every = tokenize_splits(data, tokenizer, 32, cache_dir=tmp_path, long_text=cfg)
    assert len(first["train"]) == len(data.splits["train"])
    read, owner = _windows(tokenizer, list(data.splits["train"]["text"]), cfg)
    assert len(every["train"]) == len(read) > len(first["train"])
    assert list(every["train"]["input_ids"]) == [r["input_ids"] for r in read]
    labels = list(data.splits["train"]["label"])
    assert list(every["train"]["label"]) == [labels[i] for i in owner]
    assert max(len(ids) for ids in every["train"]["input_ids"]) == 32
    assert len(every["validation"]) == len(first["validation"])  # validation: first window


@pytest.mark.parametrize("cut", ["tokens", "sentences"])
def test_train_spread_keeps_evenly_spaced_windows_first_and_last_among_them(
    cut: str, tiny_backbone: Path, long_data: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from sentiment_hf.config.recipe import DataConfig
    from sentiment_hf.data.load import load_splits
    from sentiment_hf.data.tokenize import tokenize_splits

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    data = load_splits(DataConfig(source=str(long_data)))
    every = tokenize_splits(
        data, tokenizer, 32, cache_dir=tmp_path, long_text=LongTextConfig(cut=cut, train="all")
    )
    spread = tokenize_splits(
        data,
        tokenizer,
        32,
        cache_dir=tmp_path,
        long_text=LongTextConfig(cut=cut, train="spread", train_windows=2),
    )
    texts = list(data.splits["train"]["text"])
    per_text = np.bincount(_windows(tokenizer, texts, LongTextConfig(cut=cut))[1]).tolist()
    assert max(per_text) > 2  # some texts lose windows
    assert len(spread["train"]) == sum(min(k, 2) for k in per_text) < len(every["train"])
    rows, start = [], 0
    for k in per_text:  # each text's first and last window of train: all, in that order
        rows += [start] if k == 1 else [start, start + k - 1]
        start += k
    assert list(spread["train"]["input_ids"]) == [every["train"]["input_ids"][i] for i in rows]
    assert list(spread["train"]["label"]) == [every["train"]["label"][i] for i in rows]


def test_training_with_train_all_runs_on_the_windows(
    tiny_backbone: Path, long_data: Path, tmp_path: Path
) -> None:
    from conftest import tiny_recipe_overrides

    from sentiment_hf import train

    out = tmp_path / "run"
    overrides = [
        *tiny_recipe_overrides(tiny_backbone, long_data, out),
        "model.long_text.train=all",
        "training.num_train_epochs=1",
        "training.per_device_train_batch_size=8",
    ]
    train(load_recipe(REPO / "recipes" / "base.yaml", overrides))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    with open(long_data / "train.csv", encoding="utf-8") as handle:
        texts = [r["text"] for r in csv.DictReader(handle)]
    rows = len(_windows(tok, texts, LongTextConfig())[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_global_step"] == math.ceil(rows / 8)
    assert RunDir.open(out).long_text.train == "all"


@pytest.fixture(scope="module")
def labelled_long(rt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 long texts (2 to 8 rt-polarity sentences of one class), labels ``pos`` / ``neg``."""
    from sentiment_hf.data.load import read_rt_polarity

    train = read_rt_polarity(rt_dir)["train"]
    by_label = {0: [], 1: []}
    for text, label in zip(train["text"], train["label"], strict=True):
        by_label[label].append(text)
    out = tmp_path_factory.mktemp("rule") / "long.csv"
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        for i in range(120):
            k = (2, 4, 8)[i % 3]
            pool = by_label[i % 2][1000 + i * 8 : 1000 + i * 8 + k]
            writer.writerow([" ".join(pool), "positive" if i % 2 else "negative"])
    return out


def test_a_fitted_document_rule_decides_every_long_text_on_every_path(
    exported_run: Path,
    labelled_long: Path,
    long_texts: dict[str, list],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sentiment document-rule`` stores a rule that replaces the mean for texts read in
    several windows (by the stored formula, before the run's calibration), leaves one-window
    texts alone, and holds for torch, ONNX and the server alike."""
    from cli_inprocess import run_main

    from sentiment_hf.longtext import document_features
    from sentiment_hf.serve import create_app

    run = tmp_path / "run"
    shutil.copytree(exported_run, run)
    args = ["document-rule", str(run), str(labelled_long), "--text-column", "review"]
    args += ["--label-column", "sentiment"]
    unmapped = run_main(args, capsys, monkeypatch)
    assert unmapped.code == 2 and "--label-map negative=LABEL" in unmapped.error_lines[0]
    fitted = run_main(
        [*args, "--label-map", "negative=neg", "--label-map", "positive=pos"], capsys, monkeypatch
    )
    assert fitted.code == 0, fitted.stderr
    report = json.loads(fitted.stdout)
    with open(labelled_long, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    windows, owners = Predictor(exported_run).window_logits([r["review"] for r in rows])
    long = np.bincount(owners, minlength=len(rows)) > 1
    truth = np.array([r["sentiment"] == "positive" for r in rows])
    mean = aggregate_logits(windows, owners, len(rows)).argmax(1) == truth
    assert (report["texts"], report["texts_in_several_windows"]) == (120, long.sum())
    assert report["mean_accuracy"] == pytest.approx(mean[long].mean())
    rule = RunDir(run).document_rule
    assert rule is not None and rule.temperature == RunDir(run).policy.temperature

    texts = long_texts["text"][:24]
    with_rule = Predictor(run)
    logits, owner = with_rule.window_logits(texts)
    several = np.bincount(owner, minlength=len(texts)) > 1
    assert 8 <= several.sum() < len(texts)  # long and short texts both
    got = with_rule.predict_logits(texts)
    want = rule.logits(document_features(logits, owner, len(texts)))
    np.testing.assert_allclose(got[several], want[several], rtol=1e-5, atol=1e-5)
    plain = Predictor(exported_run).predict_logits(texts)
    np.testing.assert_array_equal(got[~several], plain[~several])  # one window: the model's
    assert np.abs(got[several] - plain[several]).max() > 100 * SAME  # the rule changed them

    reference = [p.to_dict() for p in with_rule.predict(texts)]
    onnx = [p.to_dict() for p in Predictor(run, backend="onnx").predict(texts)]
    with TestClient(create_app(run, request_log=None)) as client:
        served = client.post("/predict", json={"texts": texts}).json()["predictions"]
    moved = _with_long_text(run, tmp_path / "sentences", cut="sentences")
    refused = run_main(
        ["predict", str(moved), long_one := texts[int(np.argmax(several))]], capsys, monkeypatch
    )
    assert refused.code == 2
    assert (
        "fitted on windows cut at tokens, but the run cuts them at sentences"
        in (refused.error_lines[0])
    )
    (run / "document_rule.json").write_text('{"center": [0.0]}', encoding="utf-8")
    damaged = run_main(["predict", str(run), long_one], capsys, monkeypatch)
    assert damaged.code == 2 and "document_rule.json is damaged" in damaged.error_lines[0]
    for answers, atol in ((onnx, SAME), (served, 1e-6)):
        assert [a["label"] for a in answers] == [r["label"] for r in reference]
        np.testing.assert_allclose(
            [a["score"] for a in answers], [r["score"] for r in reference], atol=atol
        )
