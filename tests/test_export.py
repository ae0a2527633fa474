"""ONNX export, int8 quantization, the parity check on the real RT test split, the ONNX Predictor.

Everything here runs for real: torch.onnx export, onnxruntime sessions, the raw rt-polarity files.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from sentiment_hf import Predictor, SentimentError
from sentiment_hf.export.onnx import PARITY_FILE, export_onnx
from sentiment_hf.hardware import cpu_speed_flags
from sentiment_hf.longtext import LongTextConfig

RT_TEST_SIZE = 1066


@pytest.fixture(scope="module")
def exported(tiny_exported: Path) -> Path:
    """The tiny run with model.onnx, model.int8.onnx and export_parity.json (conftest's, shared
    with test_batch_predict)."""
    return tiny_exported


def _fresh_run(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run (without checkpoints) that a test may export into."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    return run


def _run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from sentiment_hf.cli import main

    monkeypatch.setattr(sys, "argv", ["sentiment", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code or 0


def test_export_writes_onnx_files_with_dynamic_axes(exported: Path) -> None:
    import onnx

    for name in ("model.onnx", "model.int8.onnx"):
        graph = onnx.load(str(exported / name), load_external_data=False).graph
        inputs = {i.name: i for i in graph.input}
        # the tiny backbone is BERT: its token_type_ids input is kept
        assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
        for tensor in inputs.values():
            dims = tensor.type.tensor_type.shape.dim
            assert [d.dim_param for d in dims] == ["batch", "sequence"], name
        assert [o.name for o in graph.output] == ["logits"]
    # int8 weights make the file smaller than the fp32 one
    assert (exported / "model.int8.onnx").stat().st_size < (exported / "model.onnx").stat().st_size


def test_parity_on_the_real_test_split_is_saved_and_tight(exported: Path) -> None:
    report = json.loads((exported / PARITY_FILE).read_text())
    assert report["split"] == "test"
    assert report["samples"] == RT_TEST_SIZE  # the whole real RT test split, not the tiny slice
    fp32 = report["onnx"]
    assert fp32["max_abs_logit_diff"] < 1e-4
    assert fp32["argmax_agreement_pct"] == 100.0
    assert fp32["accuracy"] == report["torch"]["accuracy"]
    int8 = report["onnx-int8"]
    assert int8["max_abs_logit_diff"] < 0.5
    assert int8["argmax_agreement_pct"] >= 95.0
    assert abs(int8["accuracy"] - report["torch"]["accuracy"]) <= 0.03


def test_onnx_predictor_matches_torch_and_keeps_input_order(exported: Path) -> None:
    texts = [
        "a gorgeous, witty, seductive movie .",
        "x",
        "the plot is a mess and the acting is worse , a dull , lifeless slog from start to end .",
        "",
        "fine .",
    ]
    torch_pred = Predictor(exported, backend="torch", batch_size=2, device="cpu")
    expected = torch_pred.predict_proba(texts)
    for backend, tol in (("onnx", 1e-5), ("onnx-int8", 0.1)):
        predictor = Predictor(exported, backend=backend, batch_size=2)
        probs = predictor.predict_proba(texts)
        np.testing.assert_allclose(probs, expected, atol=tol)
        reversed_probs = predictor.predict_proba(texts[::-1])
        np.testing.assert_allclose(reversed_probs[::-1], probs, atol=1e-6)
        preds = predictor.predict(texts)
        assert [p.text for p in preds] == texts
        assert {p.label for p in preds} <= {"neg", "pos"}
        assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in preds)


def test_onnx_predictor_truncates_long_input_and_says_so_once(
    exported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cut = LongTextConfig(mode="truncate")  # the window mode is tested in test_longtext.py
    predictor = Predictor(exported, backend="onnx", long_text=cut)
    long_text = "a wonderful film . " * 400
    with caplog.at_level("WARNING"):
        first = predictor.predict_proba([long_text, "ok"])
        predictor.predict_proba([long_text])
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1
    np.testing.assert_allclose(
        first[:1],
        Predictor(exported, backend="torch", device="cpu", long_text=cut).predict_proba(
            [long_text]
        ),
        atol=1e-5,
    )


def test_onnx_backend_without_export_names_the_fix(tiny_run: Path) -> None:
    with pytest.raises(SentimentError, match=r"no model\.onnx .*`sentiment export "):
        Predictor(tiny_run, backend="onnx")
    with pytest.raises(SentimentError, match=r"--quantize int8`"):
        Predictor(tiny_run, backend="onnx-int8")


def test_predictor_threads_reach_the_onnx_session(exported: Path) -> None:
    """The server's --intra-op-threads: one session built with that many intra-op threads."""
    from sentiment_hf.hardware import physical_cores

    for backend in ("onnx", "onnx-int8"):
        chosen = Predictor(exported, backend=backend, intra_op_threads=3).backend.session
        assert chosen.get_session_options().intra_op_num_threads == 3
        default = Predictor(exported, backend=backend).backend.session
        assert default.get_session_options().intra_op_num_threads == physical_cores()


def test_onnx_predictor_rejects_empty_input(exported: Path) -> None:
    with pytest.raises(SentimentError, match="no input texts"):
        Predictor(exported, backend="onnx").predict([])


def test_export_rejects_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(SentimentError, match="not a trained model directory"):
        export_onnx(tmp_path)
    with pytest.raises(SentimentError, match="does not exist"):
        export_onnx(tmp_path / "missing")


def test_export_rejects_unknown_quantization(tiny_run: Path) -> None:
    with pytest.raises(SentimentError, match="unknown --quantize 'int4'"):
        export_onnx(tiny_run, quantize="int4")


def test_model_without_token_type_ids_exports_two_inputs(
    tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    """A DistilBERT-style classifier has no token_type_ids; the ONNX graph must not ask for it."""
    import onnx
    import torch
    from transformers import (
        AutoTokenizer,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=128, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
    )  # fmt: skip
    DistilBertForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # as distilbert's tokenizer
    tokenizer.save_pretrained(tmp_path)

    export_onnx(tmp_path, data=str(rt_dir), max_samples=64)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    report = json.loads((tmp_path / PARITY_FILE).read_text())
    assert report["samples"] == 64
    assert report["onnx"]["max_abs_logit_diff"] < 1e-4
    predictor = Predictor(tmp_path, backend="onnx")
    assert predictor.backend.input_names == ["input_ids", "attention_mask"]
    assert predictor.predict(["fine ."])[0].label in {"neg", "pos"}


def test_cli_export_and_predict_with_onnx(
    exported: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run_cli(
        monkeypatch, "predict", str(exported), "--backend", "onnx", "--json", "good", "bad"
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["good", "bad"]


def test_cli_export_bad_input_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_cli(monkeypatch, "export", str(tmp_path / "nope")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err
    assert "Traceback" not in err


def test_cli_export_prints_and_saves_parity(
    tiny_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = _fresh_run(tiny_run, tmp_path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING):
            code = _run_cli(
                monkeypatch, "export", str(run), "--max-samples", "48", "--quantize", "int8"
            )
    assert code == 0
    shown = capsys.readouterr()
    saved = json.loads((run / PARITY_FILE).read_text())
    # the table: one row per file, its agreement with torch; steps announced on stderr
    assert "parity on 48 test texts" in shown.out and "{" not in shown.out
    for name, file in (("onnx", "model.onnx"), ("onnx-int8", "model.int8.onnx")):
        agreement = f"{saved[name]['argmax_agreement_pct']:.2f} %"
        assert re.search(rf"{name} \({re.escape(file)}\).*{re.escape(agreement)}", shown.out)
    for step in ("exporting model.onnx", "quantizing to model.int8.onnx", "checking parity"):
        assert step in shown.err
    # no tracer notes and no onnxruntime pre-processing advice (it printed twice before)
    assert not [
        w for w in seen if "Tracer" in type(w.message).__name__ or "torch.onnx" in w.filename
    ]
    assert "pre-processing" not in caplog.text
    assert _run_cli(monkeypatch, "export", str(run), "--max-samples", "48", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run / PARITY_FILE).read_text())
    assert printed["samples"] == 48
    assert printed["onnx"]["argmax_agreement_pct"] == 100.0
    assert (run / "model.onnx").is_file()


@pytest.mark.slow
def test_inference_benchmark_script_runs_on_the_exported_run(
    exported: Path, tmp_path: Path
) -> None:
    """Smoke run of benchmarks/inference.py (its speed figures are not asserted: shared CPUs)."""
    import subprocess

    out = tmp_path / "bench.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "inference.py"
    args = [str(exported), "--repeats", "1", "--batch1-samples", "8", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "target: onnx-int8" in proc.stdout
    report = json.loads(out.read_text())
    assert report["test_samples"] == RT_TEST_SIZE
    assert set(report["results"]) == {"torch", "onnx", "onnx-int8"}
    torch_row = report["results"]["torch"]
    assert torch_row["batch32"]["speedup_vs_torch"] == 1.0
    assert report["results"]["onnx"]["accuracy"] == torch_row["accuracy"]
    assert report["quantization"]["weights"] in {"s8", "u8"}
    assert report["device"]["cpu_flags"] == cpu_speed_flags()


def test_inference_benchmark_script_rejects_a_non_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process: the script stops before it loads anything."""
    from conftest import load_benchmark

    monkeypatch.setattr(sys, "argv", ["inference.py", str(tmp_path)])
    with pytest.raises(SystemExit) as stopped:
        load_benchmark("inference").main()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a trained model directory" in err


def _retrain_in_place(run: Path) -> None:
    """New weights under the old export, as `train --overwrite` leaves them (one tensor moved)."""
    from safetensors.torch import load_file, save_file

    weights = run / "model.safetensors"
    tensors = load_file(weights)
    name = next(k for k in tensors if k.startswith("classifier") and k.endswith("weight"))
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, weights, metadata={"format": "pt"})


def test_export_records_the_weights_it_was_made_from(exported: Path) -> None:
    import onnx

    from sentiment_hf.rundir import ONNX_WEIGHTS_KEY, RunDir

    digest = RunDir(exported).weights_sha256
    for name in ("model.onnx", "model.int8.onnx"):
        props = {p.key: p.value for p in onnx.load(str(exported / name)).metadata_props}
        assert props[ONNX_WEIGHTS_KEY] == digest


def test_a_stale_export_is_refused_with_the_fix(
    exported: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    Predictor(run, backend="onnx")  # matching weights load
    _retrain_in_place(run)
    for backend in ("onnx", "onnx-int8"):
        with pytest.raises(SentimentError, match=r"exported from other weights.*sentiment export"):
            Predictor(run, backend=backend)
    Predictor(run, backend="torch")  # the weights themselves are fine
    assert _run_cli(monkeypatch, "predict", str(run), "--backend", "onnx", "good") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and "re-export" in err
    assert "Traceback" not in err
    export_onnx(run, parity=False)
    Predictor(run, backend="onnx")  # re-exported: accepted again


def test_an_export_without_a_weights_record_is_refused(exported: Path, tmp_path: Path) -> None:
    import onnx

    run = tmp_path / "run"
    shutil.copytree(exported, run)
    model = onnx.load(str(run / "model.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(run / "model.onnx"))
    with pytest.raises(SentimentError, match=r"records no weights.*sentiment export"):
        Predictor(run, backend="onnx")


def _int8_weight_types(path: Path) -> set[int]:
    """Element types of the quantized weight initializers of an int8 file."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {t.data_type for t in graph.initializer if t.name.endswith("_quantized")}


def test_int8_auto_keeps_the_weight_type_closer_to_fp32_on_validation(exported: Path) -> None:
    import onnx

    from sentiment_hf.data.load import load_splits
    from sentiment_hf.rundir import RunDir

    quant = json.loads((exported / PARITY_FILE).read_text())["quantization"]
    assert quant["chosen_on"]["split"] == "validation"
    scores = {k: v["mean_abs_logit_diff"] for k, v in quant["candidates"].items()}
    assert set(scores) == {"s8", "u8"}
    assert quant["weights"] == min(scores, key=lambda k: (scores[k], k != "s8"))
    wanted = onnx.TensorProto.INT8 if quant["weights"] == "s8" else onnx.TensorProto.UINT8
    assert _int8_weight_types(exported / "model.int8.onnx") == {wanted}
    # the file kept is the candidate that was scored: its validation distance reproduces
    run = RunDir.open(exported)
    cfg = run.data_config(None)
    cfg.label_names = run.labels
    texts = list(
        load_splits(cfg, seed=run.training_seed, splits=("validation",)).splits["validation"][
            "text"
        ]
    )[: quant["chosen_on"]["texts"]]
    fp32 = Predictor(exported, backend="onnx").predict_logits(texts)
    int8 = Predictor(exported, backend="onnx-int8").predict_logits(texts)
    assert float(np.abs(int8 - fp32).mean()) == pytest.approx(scores[quant["weights"]], rel=1e-6)


def test_int8_weight_type_can_be_forced_and_a_bad_one_is_refused(
    tiny_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import onnx

    run = _fresh_run(tiny_run, tmp_path)
    result = export_onnx(run, quantize="int8", int8_weights="u8", max_samples=16)
    assert result.parity["quantization"] == {
        "per_channel": True,
        "reduce_range": False,
        "weights": "u8",
    }
    assert _int8_weight_types(run / "model.int8.onnx") == {onnx.TensorProto.UINT8}
    before = (run / "model.int8.onnx").read_bytes()
    code = _run_cli(monkeypatch, "export", str(run), "--quantize", "int8", "--int8-weights", "s4")
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown --int8-weights 's4'; choose auto, s8, u8" in err
    assert "Traceback" not in err
    assert (run / "model.int8.onnx").read_bytes() == before


def test_int8_auto_without_readable_data_falls_back_to_s8_with_the_reason(
    tiny_run: Path, tmp_path: Path
) -> None:
    import onnx

    run = _fresh_run(tiny_run, tmp_path)
    missing = str(tmp_path / "not-mounted")
    result = export_onnx(run, quantize="int8", parity=False, data=missing)
    assert result.parity == {}
    assert _int8_weight_types(run / "model.int8.onnx") == {onnx.TensorProto.INT8}
    # the int8 file still serves: it is stamped with the run's weights
    assert Predictor(run, backend="onnx-int8").predict_logits(["fine"]).shape == (1, 2)


def test_int8_weights_are_chosen_on_test_when_the_data_has_no_validation(
    tiny_run: Path, tmp_path: Path, rt_dir: Path
) -> None:
    """A folder holding only test.csv: the s8/u8 choice runs on its test rows (a missing split
    is a typed MissingSplit, not a match on an error's wording)."""
    import csv

    from sentiment_hf.data.load import read_rt_polarity

    run = _fresh_run(tiny_run, tmp_path)
    data = tmp_path / "only-test"
    data.mkdir()
    test = read_rt_polarity(rt_dir)["test"]
    with open(data / "test.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for text, label in zip(test["text"][:24], test["label"], strict=False):
            writer.writerow([text, ("neg", "pos")[label]])
    result = export_onnx(run, quantize="int8", data=str(data), max_samples=24)
    chosen = result.parity["quantization"]["chosen_on"]
    assert chosen == {"split": "test", "texts": 24, "by": "mean |logit - fp32 logit|"}
