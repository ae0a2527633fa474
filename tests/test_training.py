"""Training: the arguments a run gets on this machine and the record of what it changed in them,
the real packaged MiniLM, resume after a crash, 2-process torchrun, W&B offline."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_inprocess import run_main
from conftest import REPO, tiny_recipe_overrides
from transformers import TrainerCallback, TrainingArguments

from sentiment_hf import load_recipe, train
from sentiment_hf.config.recipe import PROJECT_TRAINING_KEYS
from sentiment_hf.errors import SentimentError
from sentiment_hf.hardware import cpu_has_native_bf16
from sentiment_hf.training import train as training
from sentiment_hf.training.train import (
    build_training_args,
    repeats_for_min_steps,
    resolve_training_args,
)

BASE = REPO / "recipes" / "base.yaml"


def _base(tmp_path: Path, *overrides: str):
    return load_recipe(BASE, [f"training.output_dir={tmp_path}", *overrides])


def _fake_machine(monkeypatch: pytest.MonkeyPatch, cuda: bool, native_bf16: bool) -> None:
    """Make the probes report a machine this one may not be (a mock of hardware): the settings
    they drive are still checked on real TrainingArguments."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: native_bf16)


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sentiment_hf.training.train"]


def test_base_recipe_keeps_bf16_where_the_cpu_has_it(tmp_path: Path) -> None:
    recipe = _base(tmp_path)
    assert recipe.training["bf16"] is True
    args = build_training_args(recipe)
    assert args.bf16 is (torch.cuda.is_available() or cpu_has_native_bf16())


def test_bf16_falls_back_to_fp32_on_a_cpu_without_bf16_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Such a CPU cannot exist on this machine, so its feature probes are faked.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = _base(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sentiment_hf.training.train"):
        args = build_training_args(recipe)
    assert args.bf16 is False
    assert "AVX512_BF16" in caplog.text


DEVICE_CHANGES = [("dataloader_pin_memory", True, False), ("use_cpu", False, True)]


@pytest.mark.parametrize(
    ("native_bf16", "expected", "level"),
    [
        (False, [*DEVICE_CHANGES, ("bf16", True, False)], logging.WARNING),  # precision changed
        (True, DEVICE_CHANGES, logging.INFO),
    ],
    ids=["cpu-without-bf16-units", "cpu-with-bf16-units"],
)
def test_every_change_a_cpu_makes_is_recorded_and_logged_once(
    native_bf16: bool,
    expected: list[tuple[str, bool, bool]],
    level: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _fake_machine(monkeypatch, cuda=False, native_bf16=native_bf16)
    with caplog.at_level(logging.INFO, logger="sentiment_hf.training.train"):
        args, changes = resolve_training_args(_base(tmp_path))
    assert (args.bf16, args.use_cpu, args.dataloader_pin_memory) == (native_bf16, True, False)
    recorded = [c.to_dict() for c in changes]
    assert [(c["field"], c["requested"], c["used"]) for c in recorded] == expected
    assert all(c["why"] for c in recorded)
    json.dumps(recorded)  # the manifest's record is plain JSON
    (record,) = _records(caplog)  # one line for all of them
    assert record.levelno == level
    assert all(c["field"] in record.getMessage() for c in recorded)


def test_settings_the_recipe_already_states_are_no_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_machine(monkeypatch, cuda=False, native_bf16=False)
    recipe = _base(
        tmp_path,
        "training.bf16=false",
        "training.use_cpu=true",
        "training.dataloader_pin_memory=false",
    )
    with caplog.at_level(logging.INFO, logger="sentiment_hf.training.train"):
        args, changes = resolve_training_args(recipe)
    assert changes == [] and _records(caplog) == []
    assert (args.bf16, args.use_cpu, args.dataloader_pin_memory) == (False, True, False)


def test_tracking_changes_report_to_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WANDB_PROJECT", "WANDB_NAME", "WANDB_SILENT"):  # configure_tracking sets them
        monkeypatch.setenv(name, "test")
    recipe = _base(tmp_path, "tracking.wandb=true")
    args, changes = resolve_training_args(recipe)
    by_field = {c.field: c for c in changes}
    assert args.report_to == ["wandb"] and args.run_name == "base"
    assert (by_field["report_to"].requested, by_field["report_to"].used) == ("none", ["wandb"])
    assert (by_field["run_name"].requested, by_field["run_name"].used) == (None, "base")
    # A caller's explicit override is what was asked, not a change.
    args, changes = resolve_training_args(recipe, report_to=["tensorboard"])
    assert args.report_to == ["tensorboard"]
    assert "report_to" not in {c.field for c in changes}


def test_the_manifest_records_what_ran(tmp_path: Path, tiny_backbone: Path, rt_dir: Path) -> None:
    """Each recorded change is what the saved TrainingArguments hold; every other field of the
    saved recipe ran as the recipe says. (Its own run: the shared tiny run turns bf16 off.)"""
    tiny_run = tmp_path / "run"
    train(load_recipe(BASE, tiny_recipe_overrides(tiny_backbone, rt_dir, tiny_run)))
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    ran = torch.load(tiny_run / "training_args.bin", weights_only=False)
    recipe = load_recipe(tiny_run / "recipe.yaml")
    changes = {c["field"]: c for c in manifest["effective_changes"]}
    expected = set()
    if not torch.cuda.is_available():
        expected = {"dataloader_pin_memory", "use_cpu"} | (
            {"bf16"} if not cpu_has_native_bf16() else set()
        )
    assert set(changes) == expected
    defaults = TrainingArguments(output_dir=str(tiny_run))
    for name, change in changes.items():
        assert getattr(ran, name) == change["used"], name
        assert recipe.training.get(name, getattr(defaults, name)) == change["requested"], name
    for name, value in recipe.training.items():
        if name in PROJECT_TRAINING_KEYS:
            continue  # the project's own keys are no TrainingArguments fields
        used = changes.get(name, {"used": value})["used"]
        if name == "report_to" and used == "none":
            used = []  # the Trainer stores "none" as no integrations
        assert getattr(ran, name) == used, name


@pytest.mark.parametrize(
    ("examples", "extra", "min_steps", "repeats"),
    [
        (500, {}, 250, 4),  # 16 steps per epoch; x3 gives 47 (188 in all), x4 gives 63 (252)
        (2000, {}, 250, 1),  # 63 x 4 = 252: the recipe already trains long enough
        (500, {"gradient_accumulation_steps": 2}, 250, 8),  # optimizer steps, not batches
        (500, {}, None, 1),  # off
        (500, {"max_steps": 10}, 250, 1),  # max_steps decides the length itself
        (500, {"num_train_epochs": 0}, 250, 1),  # no epochs: nothing to lengthen
    ],
)
def test_min_steps_repeats_the_data_until_the_run_is_long_enough(
    tmp_path: Path, examples: int, extra: dict, min_steps: int | None, repeats: int
) -> None:
    settings = {"num_train_epochs": 4, "per_device_train_batch_size": 32, **extra}
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, **settings)
    assert repeats_for_min_steps(args, examples, min_steps) == repeats


def test_min_steps_trains_that_long_with_the_recipes_evaluations(
    tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    """256 examples in batches of 32 for 2 epochs are 16 steps; min_steps=40 repeats the data 3
    times (48 steps; twice would give 32), and the run still evaluates once per epoch."""
    out = tmp_path / "run"
    overrides = [*tiny_recipe_overrides(tiny_backbone, rt_dir, out), "training.min_steps=40"]
    result = train(load_recipe(BASE, overrides))
    assert result.metrics["train_global_step"] == 48
    assert result.manifest["train_repeats"] == 3
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [h["step"] for h in state["log_history"] if "eval_accuracy" in h]
    assert evals[:2] == [24, 48]


@pytest.mark.parametrize("value", ["0", "-3", "many", "true", "2.5"])
def test_bad_min_steps_is_named_when_the_recipe_loads(value: str) -> None:
    with pytest.raises(SentimentError) as info:
        load_recipe(BASE, [f"training.min_steps={value}"])
    assert "training.min_steps: expected null or an integer >= 1" in str(info.value)


@pytest.mark.slow
def test_real_minilm_learns_on_a_slice_of_rt_polarity(tmp_path: Path, rt_dir: Path) -> None:
    recipe = load_recipe(
        BASE,
        [
            f"data.source={rt_dir}",
            "data.max_train_samples=1024",
            "data.max_eval_samples=200",
            "data.max_test_samples=200",
            "model.max_length=48",
            "training.num_train_epochs=1",
            "training.per_device_train_batch_size=16",
            "training.learning_rate=1e-4",
            "policy.calibrate=false",  # calibration has its own tests; here it would cost 1/5
            "training.bf16=false",  # the floor below was measured in fp32; bf16 CPUs run it too
            f"training.output_dir={tmp_path / 'minilm'}",
            "training.disable_tqdm=true",
        ],
    )
    result = train(recipe)
    # 64 steps of 16 (half the compute of 2 epochs of 32, which gave 0.75 / 0.76 / 0.87 test).
    # Measured with seeds 42 / 1 / 2 in fp32: test accuracy 0.74 / 0.765 / 0.795, validation
    # 0.695 / 0.75 / 0.74. Chance is 0.5; 0.65 leaves room for seed noise.
    assert result.metrics["test_accuracy"] > 0.65, result.metrics
    assert result.metrics["eval_accuracy"] > 0.65, result.metrics
    assert result.manifest["backbone"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert result.manifest["world_size"] == 1
    assert not any(c["field"] == "bf16" for c in result.manifest["effective_changes"])


class CrashAfterFirstCheckpoint(TrainerCallback):
    """Simulates a killed run: raises right after checkpoint-N is on disk."""

    def on_save(self, args, state, control, **kwargs):
        raise RuntimeError("simulated crash")


def test_resume_continues_from_the_last_checkpoint(
    tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    recipe = load_recipe(BASE, tiny_recipe_overrides(tiny_backbone, rt_dir, run_dir))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(recipe, callbacks=[CrashAfterFirstCheckpoint()])
    assert [p.name for p in run_dir.glob("checkpoint-*")] == ["checkpoint-8"]
    assert not (run_dir / "metrics.json").exists()

    with pytest.raises(SentimentError, match="already holds a run"):
        train(recipe)  # no --resume: the crashed run is not clobbered

    result = train(recipe, resume=True)
    assert result.manifest["resumed_from"].endswith("checkpoint-8")
    assert result.metrics["train_global_step"] == 16  # 2 epochs x 8 steps, not 8 + 16
    state = json.loads((run_dir / "trainer_state.json").read_text())
    evaluated_epochs = [e["epoch"] for e in state["log_history"] if "eval_accuracy" in e]
    assert evaluated_epochs[:2] == [1.0, 2.0]  # epoch 1's evaluation survives the resume


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "PYTEST_"))}
    env.update(PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", **extra)
    return env


def _ddp_overrides(backbone: Path, rt_dir: Path, out: Path, batch: int) -> list[str]:
    """One epoch of 8 global steps of 32 on the tiny backbone, with nothing that differs between
    one process and two by design: no dropout (each rank would draw its own masks), fp32 (bf16
    rounds a batch of 16 and one of 32 differently)."""
    return [
        *tiny_recipe_overrides(backbone, rt_dir, out),
        "training.num_train_epochs=1",
        "model.dropout=0.0",
        "training.bf16=false",
        f"training.per_device_train_batch_size={batch}",
    ]


def _train_losses(run_dir: Path) -> list[tuple[int, float]]:
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return [(e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(
    tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    """The same global batch (2 x 16 under torchrun vs 1 x 32 here) sees the same examples at
    every step and averages the same gradients, so every logged loss and every final metric
    agree to float rounding. The ranks tokenize cold (an empty cache: rank 0 builds it under
    ``main_process_first`` while rank 1 waits) and torchrun picks a free port (--standalone)."""
    one = tmp_path / "one"
    single = train(load_recipe(BASE, _ddp_overrides(tiny_backbone, rt_dir, one, 32))).metrics
    run_dir, cache = tmp_path / "ddp", tmp_path / "cold-cache"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "sentiment_hf.cli", "train", str(BASE),
        *_ddp_overrides(tiny_backbone, rt_dir, run_dir, 16),
    ]  # fmt: skip
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_cli_env(WANDB_MODE="disabled", SENTIMENT_HF_CACHE=str(cache)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    built = sorted(p.name for p in cache.glob("tokenized/*/*.arrow"))
    assert built == ["test.arrow", "train.arrow", "validation.arrow"], built
    ddp = json.loads((run_dir / "metrics.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    assert ddp["train_global_step"] == single["train_global_step"] == 8
    losses_ddp, losses_one = _train_losses(run_dir), _train_losses(one)
    assert [s for s, _ in losses_ddp] == [s for s, _ in losses_one] == [2, 4, 6, 8]
    assert [v for _, v in losses_ddp] == pytest.approx([v for _, v in losses_one], abs=1e-5)
    for key in ("eval_loss", "test_loss"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-5), key
    for key in ("eval_accuracy", "test_accuracy", "eval_f1", "test_f1"):
        assert ddp[key] == single[key], key
    # The saved weights agree too, and training moved them (not two untouched copies agreeing).
    from safetensors.torch import load_file

    w_one, w_ddp = (load_file(d / "model.safetensors") for d in (one, run_dir))
    start = load_file(tiny_backbone / "model.safetensors")
    assert w_ddp.keys() == w_one.keys()
    # Attention key biases get no gradient in exact arithmetic (softmax ignores a shift shared
    # by every key): Adam turns their rounding noise into lr-sized steps that differ from run to
    # run (2e-4 measured), so they are left out. 8 Adam steps at lr 1e-3 move a weight by up to
    # ~8e-3; everything else agrees to float rounding (8e-6 measured).
    drift = {
        name: float((w_ddp[name] - tensor).abs().max())
        for name, tensor in w_one.items()
        if not name.endswith("attention.self.key.bias")
    }
    assert max(drift.values()) < 5e-5, sorted(drift.items(), key=lambda kv: -kv[1])[:3]
    moved = [
        k for k in start if f"bert.{k}" in w_one and not torch.equal(start[k], w_one[f"bert.{k}"])
    ]
    assert len(moved) > len(start) // 2, moved


def test_wandb_without_a_key_runs_offline(
    tmp_path: Path,
    tiny_backbone: Path,
    rt_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In this process through the console entry point: no key, no ~/.netrc, W&B goes offline."""
    run_dir = tmp_path / "wb"
    home = tmp_path / "home"
    home.mkdir()
    for name in {*[k for k in os.environ if k.startswith("WANDB_")], "WANDB_PROJECT",
                 "WANDB_NAME", "WANDB_SILENT", "WANDB_RUN_GROUP", "WANDB_MODE"}:  # fmt: skip
        monkeypatch.setenv(name, "")  # recorded, so what train() sets is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    overrides = tiny_recipe_overrides(tiny_backbone, rt_dir, run_dir)
    overrides += [
        "tracking.wandb=true",
        "tracking.project=sentiment-hf-test",
        "training.num_train_epochs=1",
    ]
    import wandb

    # an earlier in-process W&B run (the sweep test's) leaves its settings, run dir included
    wandb.teardown()
    result = run_main(["train", str(BASE), *overrides], capsys, monkeypatch)
    wandb.teardown()
    assert result.code == 0, result.stderr[-3000:]
    assert "logging offline" in caplog.text and os.environ["WANDB_MODE"] == "offline"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the offline run holds the logged history"


def test_every_file_of_a_run_is_readable_by_others_as_the_umask_allows(tiny_run: Path) -> None:
    """safetensors writes weights 0600; a run trained as root must still serve as the
    container's non-root user, so weights get the umask's mode like every other file."""
    import stat

    from sentiment_hf.fileio import current_umask

    want = 0o666 & ~current_umask()
    files = [p for p in tiny_run.rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" and p.parent != tiny_run for p in files)  # checkpoints
    modes = {str(p.relative_to(tiny_run)): stat.S_IMODE(os.stat(p).st_mode) for p in files}
    assert {name: oct(mode) for name, mode in modes.items() if mode != want} == {}
