"""Training restarts: kill -9 mid-epoch, then resume, ends exactly where an uninterrupted run does.

On CPU the Trainer restores weights, optimizer, scheduler, RNG states and the position in the
data order from the checkpoint, so the resumed run must log the same loss at every step and end
with the same weights, bit for bit. That holds only when both runs do the same arithmetic: fp32
(bf16 sums change with the thread count) and one intra-op thread in every run, each in a fresh
process. A resume that replays other batches (``ignore_data_skip``) is shown to break the
comparison. A half-written newest checkpoint is skipped with a warning; ``overwrite`` replaces a
finished run.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, tiny_recipe_overrides
from safetensors.torch import load_file

from sentiment_hf import load_recipe, train
from sentiment_hf.errors import SentimentError
from sentiment_hf.training.checkpoints import incomplete_reason, last_complete_checkpoint

BASE = REPO / "recipes" / "base.yaml"
KILL_AT_STEP = 14  # epoch 2 of 2 (8 steps per epoch), two steps after checkpoint-12
COMPARED = ("eval_loss", "eval_accuracy", "test_loss", "test_accuracy", "train_global_step")

#: ``python -c SCRIPT RESUME RECIPE OVERRIDES...``: train on one thread; resume from the last
#: checkpoint when RESUME is 1.
TRAIN = """
import sys
import torch
from sentiment_hf import load_recipe, train

torch.set_num_threads(1)
{callbacks}
train(load_recipe(sys.argv[2], sys.argv[3:]), resume=sys.argv[1] == "1", callbacks=callbacks)
"""
PLAIN = TRAIN.format(callbacks="callbacks = []")
#: The same, SIGKILLing itself at the end of step KILL_AT_STEP (POSIX only).
KILL_9 = TRAIN.format(
    callbacks=f"""
import os, signal
from transformers import TrainerCallback

class KillNine(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {KILL_AT_STEP}:
            os.kill(os.getpid(), signal.SIGKILL)

callbacks = [KillNine()]"""
)


def _overrides(tiny_backbone: Path, rt_dir: Path, run_dir: Path) -> list[str]:
    return [
        *tiny_recipe_overrides(tiny_backbone, rt_dir, run_dir),
        "training.eval_strategy=steps",
        "training.eval_steps=4",
        "training.save_strategy=steps",
        "training.save_steps=4",
        "training.save_total_limit=3",
        "training.bf16=false",  # fp32: exact on any CPU (bf16 sums depend on the thread count)
        "training.load_best_model_at_end=false",  # the final weights are the last step's
        "early_stopping.patience=0",
    ]


def _train(
    overrides: list[str], resume: bool = False, script: str = PLAIN
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, str(int(resume)), str(BASE), *overrides],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return [(e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]


def _weights_equal(a: Path, b: Path) -> bool:
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return left.keys() == right.keys() and all(left[k].equal(right[k]) for k in left)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, rt_dir: Path):
    run_dir = tmp_path_factory.mktemp("resume") / "straight"
    done = _train(_overrides(tiny_backbone, rt_dir, run_dir))
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir


@pytest.mark.linux_only  # SIGKILL
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(
    uninterrupted: Path, tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    run_dir = tmp_path / "killed"
    overrides = _overrides(tiny_backbone, rt_dir, run_dir)
    killed = _train(overrides, script=KILL_9)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run_dir / "metrics.json").exists()
    assert last_complete_checkpoint(run_dir).name == "checkpoint-12"

    # a crash while saving the next checkpoint: weights written, trainer state cut short
    broken = run_dir / "checkpoint-16"
    shutil.copytree(run_dir / "checkpoint-12", broken)
    state = (broken / "trainer_state.json").read_text()
    (broken / "trainer_state.json").write_text(state[: len(state) // 2])
    assert incomplete_reason(broken) == "trainer_state.json is cut short"
    replay_dir = Path(shutil.copytree(run_dir, tmp_path / "replayed"))

    with pytest.raises(SentimentError, match="already holds a run"):
        train(load_recipe(BASE, overrides))  # neither --resume nor --overwrite: refused
    resumed = _train(overrides, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "skipping" in resumed.stderr and "checkpoint-16" in resumed.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["resumed_from"].endswith("checkpoint-12")

    straight = _losses(uninterrupted)
    assert [step for step, _ in straight] == list(range(2, 17, 2))
    assert len({loss for _, loss in straight}) == len(straight)  # the losses move step to step
    assert _losses(run_dir) == straight  # every step, before and after the kill
    assert _weights_equal(run_dir, uninterrupted)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    wanted = json.loads((uninterrupted / "metrics.json").read_text())
    assert {k: metrics[k] for k in COMPARED} == {k: wanted[k] for k in COMPARED}

    # The comparison can fail: a resume that starts epoch 2 over (other batches after step 12)
    # logs other losses after the checkpoint and ends with other weights.
    replay = [*_overrides(tiny_backbone, rt_dir, replay_dir), "training.ignore_data_skip=true"]
    replayed = _train(replay, resume=True)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    again = _losses(replay_dir)
    assert again[:6] == straight[:6]  # up to checkpoint-12: the same run
    assert again[6:] != straight[6:]
    assert not _weights_equal(replay_dir, uninterrupted)


def test_a_run_without_a_complete_checkpoint_resumes_from_scratch(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoint-4").mkdir(parents=True)  # a folder the crash left empty
    assert incomplete_reason(run_dir / "checkpoint-4") == "no model weights"
    assert last_complete_checkpoint(run_dir) is None


def test_overwrite_replaces_a_finished_run(
    uninterrupted, tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    run_dir = tmp_path / "again"
    shutil.copytree(uninterrupted, run_dir)
    overrides = [*_overrides(tiny_backbone, rt_dir, run_dir), "training.num_train_epochs=1"]
    with pytest.raises(SentimentError, match="--overwrite"):
        train(load_recipe(BASE, overrides))
    assert json.loads((run_dir / "metrics.json").read_text()) == {
        k: pytest.approx(v)
        for k, v in json.loads((uninterrupted / "metrics.json").read_text()).items()
    }
    # what later stages made from the old weights: ONNX files, parity, policy, eval reports
    from sentiment_hf.evaluation.calibrate import fit_policy
    from sentiment_hf.evaluation.evaluate import evaluate_model
    from sentiment_hf.export.onnx import export_onnx
    from sentiment_hf.rundir import EVAL_DIR, INT8_FILE, ONNX_FILE, PARITY_FILE, POLICY_FILE

    export_onnx(run_dir, quantize="int8", max_samples=16, int8_weights="s8")
    fit_policy(run_dir)
    evaluate_model(run_dir)
    derived = (ONNX_FILE, INT8_FILE, PARITY_FILE, POLICY_FILE, "reliability.png", EVAL_DIR)
    assert all((run_dir / name).exists() for name in derived)
    # without calibration the new run fits no policy of its own: the old one must not remain
    result = train(load_recipe(BASE, [*overrides, "policy.calibrate=false"]), overwrite=True)
    assert result.metrics["train_global_step"] == 8  # the new one-epoch run, not the old 16
    assert json.loads((run_dir / "metrics.json").read_text())["train_global_step"] == 8
    assert [name for name in derived if (run_dir / name).exists()] == []
    from sentiment_hf.hub.card import build_model_card

    assert "parity" not in build_model_card(run_dir, "me/again").lower()
