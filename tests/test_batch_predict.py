"""``sentiment predict RUN --file IN --output OUT``: streamed, resumable batch prediction.

Real onnxruntime sessions on the tiny fixture run (exported to int8, the default backend here),
real rt-polarity sentences, a real SIGKILL of a real process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_inputs import BLANK_AT, N_TEXTS, read_jsonl, write_inputs
from cli_inprocess import run_main
from conftest import REPO

from sentiment_hf import Predictor
from sentiment_hf.inference import batch
from sentiment_hf.inference.batch import PAUSE_ENV, parts_dir, predict_file

#: How far int8 probabilities of one text may move when it is batched with other texts.
INT8_BATCH = 0.05


@pytest.fixture(scope="module")
def run(tiny_exported: Path) -> Path:
    """The tiny run with a stamped model.int8.onnx (so onnx-int8 is the default); read-only."""
    return tiny_exported


@pytest.fixture(scope="module")
def texts(rt_dir: Path) -> list[str]:
    lines = (rt_dir / "rt-polarity.neg").read_bytes().decode("latin-1").split("\n")
    picked = [line.strip() for line in lines[:N_TEXTS]]
    picked[3] = 'a "quoted", comma-holding\nmulti-line review'  # CSV quoting, a newline in JSON
    return picked


@pytest.fixture(scope="module")
def inputs(texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_inputs(texts, tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def reference(run: Path, inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted single-process run: jsonl input, jsonl output, chunks of 8."""
    out = tmp_path_factory.mktemp("ref") / "ref.jsonl"
    result = predict_file(run, inputs[".jsonl"], out, text_column="review", chunk_size=8)
    assert result.backend == "onnx-int8" and result.output == out
    assert (result.chunks, result.scored_chunks, result.rows, result.blank) == (6, 6, 44, 1)
    assert not parts_dir(out).exists()  # parts cleaned after success
    return out


def test_rows_match_the_predictor_in_input_order(run: Path, texts: list[str], reference: Path):
    rows = read_jsonl(reference)
    wanted = [i for i in range(N_TEXTS) if i != BLANK_AT]
    assert [r["index"] for r in rows] == wanted
    assert [r["text"] for r in rows] == [texts[i] for i in wanted]
    # int8 answers depend on the batch (see the chunk test): score the reference's chunks of 8
    predictor = Predictor(run, backend="onnx-int8")
    direct = [
        pred
        for first in range(0, N_TEXTS, 8)
        for pred in predictor.predict([texts[i] for i in wanted if first <= i < first + 8])
    ]
    for row, pred in zip(rows, direct, strict=True):
        assert (row["label"], row["abstained"]) == (pred.label, pred.abstained)
        assert row["probabilities"] == pytest.approx(pred.probabilities, abs=1e-5)
        assert row["score"] == pytest.approx(pred.score, abs=1e-5)


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".tsv", ".parquet"])
def test_every_input_format_gives_the_same_rows(
    suffix: str, run: Path, inputs: dict[str, Path], reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    column = None if suffix == ".txt" else "review"
    predict_file(run, inputs[suffix], out, text_column=column, chunk_size=8)
    got, want = read_jsonl(out), read_jsonl(reference)
    if suffix == ".txt":  # the newline of row 3 became a space there
        want[3]["text"] = want[3]["text"].replace("\n", " ")
        assert [(r["index"], r["text"]) for r in got] == [(r["index"], r["text"]) for r in want]
        assert [r["label"] for r in got] == [r["label"] for r in want]
        return
    assert got == want


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".tsv", ".jsonl", ".parquet"])
def test_file_without_output_reads_the_file_as_output_does(
    suffix: str, run: Path, inputs: dict[str, Path], texts: list[str], capsys, monkeypatch
) -> None:
    """``predict --file reviews.csv`` scores the text column, never the header or raw rows."""
    args = ["predict", str(run), "--file", str(inputs[suffix]), "--json"]
    args += [] if suffix == ".txt" else ["--text-column", "review"]
    shown = run_main(args, capsys, monkeypatch)
    assert shown.code == 0, shown.stderr
    want = [t for i, t in enumerate(texts) if i != BLANK_AT]  # the blank row is skipped
    if suffix == ".txt":
        want = [t.replace("\n", " ") for t in want]
    assert [json.loads(line)["text"] for line in shown.stdout.splitlines()] == want
    if suffix == ".csv":  # the run's data.text_column ("text") is not in this file
        args = ["predict", str(run), "--file", str(inputs[suffix])]
        missing = run_main(args, capsys, monkeypatch)
        assert missing.code == 2 and "no column 'text' (columns: id, review)" in missing.stderr


def test_a_cp1252_file_is_read_as_the_data_readers_read_it(
    run: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """No --encoding: UTF-8, else cp1252 with a warning, as eval and train read data; before,
    `eval --data` accepted this file and `predict --file` refused it."""
    from sentiment_hf.data.readers import read_file

    texts = ["un film très réussi", "ennuyeux — et trop long", "plain ascii review"]
    src = tmp_path / "reviews.csv"
    src.write_bytes(("text,label\n" + "".join(f"{t},pos\n" for t in texts)).encode("cp1252"))
    assert read_file(src)["text"] == texts  # the data readers' rule
    shown = run_main(["predict", str(run), "--file", str(src), "--json"], capsys, monkeypatch)
    assert shown.code == 0, shown.stderr
    assert [json.loads(line)["text"] for line in shown.stdout.splitlines()] == texts
    out = tmp_path / "scored.jsonl"
    filed = run_main(
        ["predict", str(run), "--file", str(src), "--output", str(out)], capsys, monkeypatch
    )
    assert filed.code == 0, filed.stderr
    assert [row["text"] for row in read_jsonl(out)] == texts


@pytest.fixture(scope="module")
def fp32_reference(run: Path, inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The reference's rows scored by fp32 ONNX (chunks of 8)."""
    out = tmp_path_factory.mktemp("fp32") / "ref.jsonl"
    predict_file(run, inputs[".jsonl"], out, text_column="review", chunk_size=8, backend="onnx")
    return out


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_chunk_boundaries_keep_every_row_once(
    chunk_size: int,
    run: Path,
    inputs: dict[str, Path],
    reference: Path,
    fp32_reference: Path,
    tmp_path: Path,
) -> None:
    """fp32 ONNX answers do not depend on which texts share a batch: other chunk sizes give the
    same rows. int8's dynamic quantisation takes each activation's scale from the whole batch,
    so there a text's probabilities move a little with its neighbours (up to ~0.02 measured on
    the tiny run): same rows and order, probabilities within INT8_BATCH, labels not compared."""
    want = read_jsonl(reference)
    for backend, expected, tolerance, same_labels in (
        ("onnx", read_jsonl(fp32_reference), 1e-5, True),
        (None, want, INT8_BATCH, False),  # the default: onnx-int8
    ):
        out = tmp_path / f"{backend}.jsonl"
        result = predict_file(
            run, inputs[".jsonl"], out, text_column="review", chunk_size=chunk_size, backend=backend
        )
        assert result.chunks == -(-N_TEXTS // chunk_size)
        got = read_jsonl(out)
        assert [(r["index"], r["text"]) for r in got] == [(r["index"], r["text"]) for r in want]
        if same_labels:
            assert [r["label"] for r in got] == [r["label"] for r in expected]
        for a, b in zip(got, expected, strict=True):
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=tolerance)


def test_csv_and_parquet_outputs_hold_the_jsonl_rows(
    run: Path, inputs: dict[str, Path], reference: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    want = read_jsonl(reference)
    args = {"text_column": "review", "chunk_size": 8}
    predict_file(run, inputs[".jsonl"], tmp_path / "o.csv", **args)
    predict_file(run, inputs[".jsonl"], tmp_path / "o.parquet", **args)
    predict_file(run, inputs[".jsonl"], tmp_path / "bare.jsonl", include_text=False, **args)
    with open(tmp_path / "o.csv", encoding="utf-8", newline="") as handle:
        from_csv = list(csv.DictReader(handle))
    table = pq.read_table(tmp_path / "o.parquet")
    assert list(from_csv[0]) == table.column_names == [
        "index", "text", "label", "score", "abstained", "prob_neg", "prob_pos"
    ]  # fmt: skip
    from_parquet = table.to_pylist()
    assert len(from_csv) == len(from_parquet) == len(want)
    for c, p, w in zip(from_csv, from_parquet, want, strict=True):
        assert int(c["index"]) == p["index"] == w["index"]
        assert c["text"] == p["text"] == w["text"]  # the quoted newline survives CSV
        assert c["label"] == p["label"] == w["label"]
        assert (c["abstained"] == "True") == p["abstained"] == w["abstained"]
        for name, value in w["probabilities"].items():
            assert float(c[f"prob_{name}"]) == p[f"prob_{name}"] == value
    bare = read_jsonl(tmp_path / "bare.jsonl")
    assert [{k: v for k, v in r.items() if k != "text"} for r in want] == bare


@pytest.fixture(scope="module")
def ml_run(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-label run directory (random head, three labels, 0.5 thresholds): no training."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = tmp_path_factory.mktemp("ml") / "run"
    torch.manual_seed(1)
    names = ["acting", "plot", "music"]
    config = BertConfig.from_pretrained(tiny_backbone)
    config.num_labels = 3
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    config.problem_type = "multi_label_classification"
    BertForSequenceClassification(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(out)
    policy = {"multi_label": True, "thresholds": [0.5, 0.5, 0.5]}
    (out / "policy.json").write_text(json.dumps(policy))
    return out


def test_multi_label_runs_give_labels(
    ml_run: Path, inputs: dict[str, Path], texts: list[str], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    result = predict_file(ml_run, inputs[".jsonl"], tmp_path / "o.jsonl", text_column="review")
    assert result.backend == "torch"  # no ONNX export: the fallback, said in the first line
    predict_file(ml_run, inputs[".jsonl"], tmp_path / "o.parquet", text_column="review")
    rows = read_jsonl(tmp_path / "o.jsonl")
    direct = Predictor(ml_run).predict([t for i, t in enumerate(texts) if i != BLANK_AT])
    assert [r["labels"] for r in rows] == [p.labels for p in direct]
    assert {len(r["labels"]) for r in rows} != {3}  # the thresholds cut: not every label
    assert "abstained" not in rows[0] and set(rows[0]["probabilities"]) == {
        "acting",
        "plot",
        "music",
    }
    assert pq.read_table(tmp_path / "o.parquet").column("labels").to_pylist() == [
        r["labels"] for r in rows
    ]


def test_a_changed_option_or_input_is_refused_then_overwrite_starts_over(
    run: Path, texts: list[str], tmp_path: Path, capsys, monkeypatch
) -> None:
    src = write_inputs(texts, tmp_path / "in")[".jsonl"]
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:  # a job stopped (Ctrl-C) after its chunks, before merging
        patch.setattr(batch, "_merge_parts", _interrupt)
        with pytest.raises(KeyboardInterrupt):
            predict_file(run, src, out, text_column="review", chunk_size=8)
    parts = sorted(parts_dir(out).iterdir())
    assert len(parts) == 7  # state.json and 6 chunks
    base = ["predict", str(run), "--file", str(src), "--output", str(out), "--text-column"]
    changed = run_main([*base, "review", "--chunk-size", "9"], capsys, monkeypatch)
    assert changed.code == 2 and len(changed.error_lines) == 1, changed.stderr
    assert "chunk_size 8 → 9" in changed.error_lines[0] and "--overwrite" in changed.error_lines[0]
    with open(src, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"review": "one more"}) + "\n")
    grown = run_main([*base, "review", "--chunk-size", "8"], capsys, monkeypatch)
    assert grown.code == 2 and "input file changed" in grown.error_lines[0], grown.stderr
    assert sorted(parts_dir(out).iterdir()) == parts  # nothing already written is lost
    fresh = run_main([*base, "review", "--chunk-size", "8", "--overwrite"], capsys, monkeypatch)
    assert fresh.code == 0, fresh.stderr
    assert [r["text"] for r in read_jsonl(out)][-1] == "one more"
    again = run_main([*base, "review", "--chunk-size", "8"], capsys, monkeypatch)
    assert again.code == 2 and "already exists" in again.error_lines[0]


@pytest.mark.linux_only  # SIGKILL
def test_resume_after_sigkill_gives_the_same_bytes(
    run: Path, inputs: dict[str, Path], reference: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "killed.jsonl"
    args = ["predict", str(run), "--file", str(inputs[".jsonl"]), "--output", str(out)]
    args += ["--text-column", "review", "--chunk-size", "8"]
    finished = 2  # of 6 chunks: the job blocks after writing its 2nd part (the test hook)
    env = {**os.environ, PAUSE_ENV: str(finished), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentiment_hf.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while len(list(parts_dir(out).glob("part-*.jsonl"))) < finished:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"{finished} chunks not finished in 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    assert len(list(parts_dir(out).glob("part-*.jsonl"))) == finished
    resumed = run_main(args, capsys, monkeypatch)
    assert resumed.code == 0, resumed.stderr
    assert (
        f"{finished} finished chunk(s)" in resumed.stderr and f"{finished} reused" in resumed.stderr
    )
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize(
    ("make", "extra", "needle"),
    [
        (lambda p: p / "in.docx", [], "unsupported type '.docx'"),
        (lambda p: p / "missing.txt", [], "not found"),
        (lambda p: _put(p / "e.txt", ""), [], "is empty"),
        (lambda p: _put(p / "a.csv", "id,body\n1,x\n"), [], "no column 'text' (columns: id, body)"),
        (lambda p: _put(p / "a.jsonl", '{"text": "ok"}\n{oops\n'), [], "line 2 is not valid JSON"),
        (lambda p: _put(p / "a.jsonl", '{"body": "x"}\n'), [], "no field 'text'"),
        (lambda p: _put(p / "a.jsonl", '{"text": 3}\n'), [], "holds int"),
        (lambda p: _put(p / "a.txt", "ok\n"), ["--output", "__TMP__/o.xlsx"], "'.xlsx'"),
        (lambda p: _put(p / "a.txt", "ok\n"), ["extra text"], "--output needs --file"),
        (lambda p: _put(p / "a.csv", "text\n"), [], "has no rows"),
        (lambda p: _put(p / "a.txt", "ok\n"), ["--backend", "tpu"], "unknown backend 'tpu'"),
        (
            lambda p: _put_bytes(p / "a.txt", b"ok\n\xff\n"),
            ["--encoding", "utf-8"],
            "line 2 is not valid utf-8",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    make, extra: list[str], needle: str, run: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    src = make(tmp_path)
    args = ["predict", str(run), *[a.replace("__TMP__", str(tmp_path)) for a in extra]]
    if "--output" not in extra:
        args += ["--output", str(tmp_path / "o.jsonl")]
    args += ["--file", str(src)]
    result = run_main(args, capsys, monkeypatch)
    assert result.code == 2, result.stderr
    assert len(result.error_lines) == 1 and needle in result.error_lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.jsonl").exists()
    assert not list(parts_dir(tmp_path / "o.jsonl").glob("part-*"))


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _put(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _put_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
