"""benchmarks/checkpoint_average.py on the tiny run: the average is the mean of the checkpoints'
weights, and the report scores both models on the real validation and test splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_benchmark
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def ca():
    return load_benchmark("checkpoint_average")


def test_average_is_the_mean_of_the_last_checkpoints(ca, tiny_run: Path, tmp_path: Path) -> None:
    chosen = ca.average_checkpoints(tiny_run, tmp_path / "avg", last=2)
    states = [load_file(str(tiny_run / name / "model.safetensors")) for name in chosen]
    mean = load_file(str(tmp_path / "avg" / "model.safetensors"))
    assert set(mean) == set(states[0])
    for key, value in mean.items():
        torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2)
    assert any(not torch.equal(states[0][k], states[1][k]) for k in mean)  # they differ
    assert not list((tmp_path / "avg").glob("checkpoint-*"))


def test_report_scores_both_models(ca, tiny_run: Path, rt_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    argv = [str(tiny_run), "--data", str(rt_dir), "--work", str(tmp_path / "w"), "--out", str(out)]
    assert ca.main(argv) == 0
    (entry,) = json.loads(out.read_text()).values()
    # The run's own model, scored on the slices train() used (its recipe's 64 sentences each),
    # through the Predictor (every window of a long sentence; train()'s metrics.json read only
    # the first 32 tokens, so they may differ by a sentence or two).
    from sentiment_hf import Predictor, load_recipe
    from sentiment_hf.data.load import load_splits

    recipe = load_recipe(tiny_run / "recipe.yaml", [f"data.source={rt_dir}"])
    data = load_splits(recipe.data, seed=recipe.training["seed"])
    predictor = Predictor(tiny_run)
    for split in ("validation", "test"):
        ds = data.splits[split]
        assert len(ds) == 64
        predicted = predictor.predict_proba(list(ds["text"])).argmax(axis=1)
        correct = predicted == np.asarray(ds["label"])
        assert entry["own"][split] == pytest.approx(float(correct.mean()))
    assert set(entry["average"]) == {"validation", "test"}


def test_too_few_checkpoints_is_one_line(ca, tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="2 checkpoints, --last 5 needs more"):
        ca.average_checkpoints(tiny_run, tmp_path / "x", last=5)
