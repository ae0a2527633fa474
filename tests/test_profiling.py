"""`sentiment train --profile`: torch.profiler trace + top-ops table in the run directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cli_inprocess import run_main
from conftest import REPO, tiny_recipe_overrides

from sentiment_hf.training.profiling import profile_files

BASE = str(REPO / "recipes" / "base.yaml")


def test_profile_writes_trace_and_top_ops_and_training_goes_on(
    tmp_path: Path,
    tiny_backbone: Path,
    rt_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In this process through the console entry point (tests/cli_inprocess.py)."""
    run_dir = tmp_path / "run"
    overrides = tiny_recipe_overrides(tiny_backbone, rt_dir, run_dir)
    args = ["train", BASE, *overrides, "--profile", "--profile-steps", "2"]
    result = run_main(args, capsys, monkeypatch)
    assert result.code == 0, result.stderr[-2000:]
    assert f"profile: {run_dir / 'profile'}" in result.stdout

    trace, table = profile_files(run_dir)
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e.get("name", "") for e in events}
    # One skipped step (#0), one warm-up step (#1), then exactly the 2 recorded steps.
    assert sorted(n for n in names if n.startswith("ProfilerStep#")) == [
        "ProfilerStep#2",
        "ProfilerStep#3",
    ]
    assert {"aten::addmm", "aten::mm", "aten::linear"} & names  # the model's matmuls
    text = table.read_text()
    assert "Self CPU" in text and "aten::" in text

    # Profiling only watched: the run finished all its steps (256 samples / 32 x 2 epochs).
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train_global_step"] == 16


def test_profile_steps_must_be_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing lands in the repo
    result = run_main(["train", BASE, "--profile", "--profile-steps", "0"], capsys, monkeypatch)
    assert result.code == 2
    assert "profile-steps" in result.stderr and "Traceback" not in result.stderr


def test_too_short_a_run_warns_and_writes_nothing(
    tmp_path: Path, tiny_backbone: Path, rt_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sentiment_hf import load_recipe, train

    run_dir = tmp_path / "short"
    overrides = [*tiny_recipe_overrides(tiny_backbone, rt_dir, run_dir), "training.max_steps=2"]
    with caplog.at_level(logging.WARNING, logger="sentiment_hf.training.profiling"):
        train(load_recipe(BASE, overrides), profile_steps=3)
    assert not (run_dir / "profile").exists()
    assert "before the profiler recorded one" in caplog.text
    assert (run_dir / "metrics.json").is_file()


def test_ranks_other_than_zero_get_their_own_files(tmp_path: Path) -> None:
    assert profile_files(tmp_path) == (
        tmp_path / "profile" / "trace.json",
        tmp_path / "profile" / "top_ops.txt",
    )
    assert profile_files(tmp_path, rank=1) == (
        tmp_path / "profile" / "trace_rank1.json",
        tmp_path / "profile" / "top_ops_rank1.txt",
    )
