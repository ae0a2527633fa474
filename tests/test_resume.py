"""Training restarts: kill -9 mid-epoch, then resume, ends exactly where an uninterrupted run does.

On CPU the Trainer restores weights, optimizer, scheduler, RNG states and the position in the
data order from the checkpoint, so every final metric must be bit-identical; a half-written
newest checkpoint is skipped with a warning; ``overwrite`` replaces a finished run.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, tiny_recipe_overrides

from sentiment_hf import load_recipe, train
from sentiment_hf.checkpoints import incomplete_reason, last_complete_checkpoint
from sentiment_hf.errors import SentimentError

BASE = REPO / "recipes" / "base.yaml"
KILL_AT_STEP = 14  # epoch 2 of 2 (8 steps per epoch), two steps after checkpoint-12
COMPARED = ("eval_loss", "eval_accuracy", "test_loss", "test_accuracy", "train_global_step")

KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from sentiment_hf import load_recipe, train

class KillNine(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)

train(load_recipe(sys.argv[2], sys.argv[3:]), callbacks=[KillNine()])
"""


def _overrides(tiny_backbone: Path, rt_dir: Path, run_dir: Path) -> list[str]:
    return [
        *tiny_recipe_overrides(tiny_backbone, rt_dir, run_dir),
        "training.eval_strategy=steps",
        "training.eval_steps=4",
        "training.save_strategy=steps",
        "training.save_steps=4",
        "training.save_total_limit=3",
        "early_stopping.patience=0",
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, rt_dir: Path):
    run_dir = tmp_path_factory.mktemp("resume") / "straight"
    return train(load_recipe(BASE, _overrides(tiny_backbone, rt_dir, run_dir)))


@pytest.mark.linux_only  # SIGKILL
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(
    uninterrupted, tmp_path: Path, tiny_backbone: Path, rt_dir: Path, caplog
) -> None:
    run_dir = tmp_path / "killed"
    overrides = _overrides(tiny_backbone, rt_dir, run_dir)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(KILL_AT_STEP), str(BASE), *overrides],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run_dir / "metrics.json").exists()
    assert last_complete_checkpoint(run_dir).name == "checkpoint-12"

    # a crash while saving the next checkpoint: weights written, trainer state cut short
    broken = run_dir / "checkpoint-16"
    shutil.copytree(run_dir / "checkpoint-12", broken)
    state = (broken / "trainer_state.json").read_text()
    (broken / "trainer_state.json").write_text(state[: len(state) // 2])
    assert incomplete_reason(broken) == "trainer_state.json is cut short"

    with pytest.raises(SentimentError, match="already holds a run"):
        train(load_recipe(BASE, overrides))  # neither --resume nor --overwrite: refused
    with caplog.at_level(logging.WARNING, logger="sentiment_hf.checkpoints"):
        resumed = train(load_recipe(BASE, overrides), resume=True)
    assert "skipping" in caplog.text and "checkpoint-16" in caplog.text
    assert resumed.manifest["resumed_from"].endswith("checkpoint-12")
    for key in COMPARED:
        assert resumed.metrics[key] == uninterrupted.metrics[key], key
    straight = json.loads((uninterrupted.run_dir / "trainer_state.json").read_text())
    again = json.loads((run_dir / "trainer_state.json").read_text())
    losses = [e["loss"] for e in straight["log_history"] if "loss" in e]
    assert [e["loss"] for e in again["log_history"] if "loss" in e] == losses


def test_a_run_without_a_complete_checkpoint_resumes_from_scratch(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoint-4").mkdir(parents=True)  # a folder the crash left empty
    assert incomplete_reason(run_dir / "checkpoint-4") == "no model weights"
    assert last_complete_checkpoint(run_dir) is None


def test_overwrite_replaces_a_finished_run(
    uninterrupted, tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    run_dir = tmp_path / "again"
    shutil.copytree(uninterrupted.run_dir, run_dir)
    overrides = [*_overrides(tiny_backbone, rt_dir, run_dir), "training.num_train_epochs=1"]
    with pytest.raises(SentimentError, match="--overwrite"):
        train(load_recipe(BASE, overrides))
    assert json.loads((run_dir / "metrics.json").read_text()) == {
        k: pytest.approx(v)
        for k, v in json.loads((uninterrupted.run_dir / "metrics.json").read_text()).items()
    }
    result = train(load_recipe(BASE, overrides), overwrite=True)
    assert result.metrics["train_global_step"] == 8  # the new one-epoch run, not the old 16
    assert json.loads((run_dir / "metrics.json").read_text())["train_global_step"] == 8
