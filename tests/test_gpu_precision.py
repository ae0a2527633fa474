"""benchmarks/gpu_precision.py runs end to end on CPU with tiny models (the GPU run is the lead's).

No GPU exists here, so the script's CUDA path (synchronise, peak memory) is not exercised; the
Trainer steps, both precisions, both recipes, both data sources, the table and the JSON are.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def gpu_precision():
    spec = importlib.util.spec_from_file_location(
        "gpu_precision", REPO / "benchmarks" / "gpu_precision.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


TINY = ["--tiny", "--device", "cpu", "--steps", "2", "--warmup", "1", "--reps", "1"]


def test_tiny_run_on_rt_polarity_prints_table_and_writes_json(
    gpu_precision, tmp_path: Path, rt_dir: Path, minilm_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "gpu.json"
    data = ["--data", str(rt_dir), "--tokenizer", str(minilm_dir)]
    gpu_precision.main([*TINY, *data, "--json", str(out)])
    payload = json.loads(out.read_text())
    rows = {(r["model"], r["precision"]): r for r in payload["results"]}
    assert set(rows) == {(m, p) for m in ("minilm", "distilbert") for p in ("fp32", "bf16")}
    for row in rows.values():
        (rep,) = row["reps"]
        assert rep["samples"] == 2 * row["setup"]["batch_size"]  # the 2 timed steps only
        assert rep["samples_per_s"] > 0
    # Batch size and max length come from the recipe files.
    assert rows[("distilbert", "fp32")]["setup"]["max_length"] == 128
    assert rows[("minilm", "fp32")]["setup"]["max_length"] == 64
    assert set(payload["bf16_over_fp32"]) == {"minilm", "distilbert"}
    text = capsys.readouterr().out
    assert "bf16/fp32" in text and "distilbert" in text
    assert payload["data"] == str(rt_dir)


def test_synthetic_data_looks_like_tokenized_rt_polarity(
    gpu_precision, rt_dir: Path, minilm_dir: Path
) -> None:
    examples = gpu_precision.load_examples("synthetic", None, 64, 500, seed=0)
    real = gpu_precision.load_examples(str(rt_dir), str(minilm_dir), 64, 500, seed=0)
    for batch in (examples, real):
        assert len(batch) == 500
        assert all(x["input_ids"][0] == 101 and x["input_ids"][-1] == 102 for x in batch)
        assert all(len(x["input_ids"]) <= 64 for x in batch)
        mean = sum(len(x["input_ids"]) for x in batch) / len(batch)
        assert 22 < mean < 33  # rt-polarity's ~27 tokens, and the synthetic stand-in for it
    assert {x["labels"] for x in real} == {0, 1}


def test_bad_arguments_exit_with_usage_error(gpu_precision) -> None:
    with pytest.raises(SystemExit) as exc:
        gpu_precision.main(["--models", "gpt2", "--device", "cpu"])
    assert exc.value.code == 2
