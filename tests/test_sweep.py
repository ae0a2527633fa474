"""`sentiment sweep`: real Optuna studies on real SQLite storage with the tiny backbone.

The search space is chosen so that pruning is certain: with sampler seed 1 the random sampler
gives trial 0 ``learning_rate=0.001`` and trial 1 ``learning_rate=30`` (which blows the
validation loss up at the first evaluation), and batch sizes 16 and 32 both appear, so the
pruner compares trials with different step counts by evaluation index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import REPO, assert_split_metrics_consistent, load_benchmark, tiny_recipe_overrides

from sentiment_hf.cli import main as cli_main
from sentiment_hf.config.recipe import load_recipe
from sentiment_hf.errors import SentimentError
from sentiment_hf.sweep import open_storage, open_study, sweep

SWEEP_YAML = str(REPO / "recipes" / "sweep.yaml")
STUDY = "tiny"


def test_a_study_a_second_worker_is_creating_is_joined_and_a_foreign_one_refused(
    tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    """Two workers start together: one has created the study but not marked it yet when the
    other looks (seen under load: the second stopped with "not created by `sentiment sweep`").
    An unmarked study without trials is joined and marked; one with trials is someone else's."""
    out = tmp_path / "s"
    recipe = load_recipe(SWEEP_YAML, sweep_overrides(tiny_backbone, rt_dir, out))
    out.mkdir()
    storage, shown = open_storage(recipe.sweep, out)
    optuna.create_study(storage=storage, study_name=STUDY)  # created, not marked yet
    from sentiment_hf.sweep.storage import STUDY_ATTR

    study = open_study(recipe, storage, shown)
    assert STUDY_ATTR in study.user_attrs  # joined and marked
    assert open_study(recipe, storage, shown).user_attrs == study.user_attrs  # now it is ours
    foreign = optuna.create_study(storage=storage, study_name="someone-elses")
    foreign.add_trial(optuna.trial.create_trial(value=1.0))
    other = load_recipe(
        SWEEP_YAML, [*sweep_overrides(tiny_backbone, rt_dir, out), "sweep.study_name=someone-elses"]
    )
    with pytest.raises(SentimentError, match="was not created by `sentiment sweep`"):
        open_study(other, storage, shown)


def sweep_overrides(backbone: Path, data: Path, out: Path, n_trials: int = 3) -> list[str]:
    """recipes/sweep.yaml made tiny: 1 epoch, 2 evaluations, a space where pruning is certain."""
    return [
        *tiny_recipe_overrides(backbone, data, out),
        "training.num_train_epochs=1",
        "data.max_train_samples=128",
        "data.max_eval_samples=32",
        "data.max_test_samples=32",
        f"sweep.n_trials={n_trials}",
        f"sweep.study_name={STUDY}",
        "sweep.sampler=random",
        "sweep.seed=1",
        "sweep.pruner=median",
        "sweep.startup_trials=1",
        "sweep.evals_per_epoch=2",
        "sweep.metric=loss",
        "sweep.direction=minimize",
        "sweep.heartbeat_interval=1",
        "sweep.grace_period=2",
        "sweep.params.weight_decay=null",
        "sweep.params.learning_rate={type: categorical, choices: [0.001, 30.0]}",
        "sweep.params.model.dropout={type: float, low: 0.0, high: 0.2}",
    ]


def run_cli(argv: list[str]) -> int:
    """The console script's main() in this process (what `sentiment ...` runs)."""
    old = sys.argv
    sys.argv = ["sentiment", *argv]
    try:
        cli_main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = old
    return 0


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{out / 'study.db'}")


def by_state(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, rt_dir: Path) -> Any:
    out = tmp_path_factory.mktemp("sweep") / "s"
    result = sweep(load_recipe(SWEEP_YAML, sweep_overrides(tiny_backbone, rt_dir, out)))
    return result


def test_three_trial_sweep_prunes_by_evaluation_index(first_sweep: Any) -> None:
    out = first_sweep.sweep_dir
    study = load(out)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 3 and first_sweep.counts["finished"] == 3
    good, bad = trials[0], trials[1]
    assert good.params["learning_rate"] == 0.001 and bad.params["learning_rate"] == 30.0
    assert good.state == optuna.trial.TrialState.COMPLETE
    assert bad.state == optuna.trial.TrialState.PRUNED
    # reports are keyed by evaluation index (1 = half an epoch), whatever the batch size
    assert sorted(good.intermediate_values) == [1, 2]
    assert sorted(bad.intermediate_values) == [1]
    assert {t.params["per_device_train_batch_size"] for t in trials} == {16, 32}
    for trial in trials:
        assert set(trial.intermediate_values) <= {1, 2}
    assert bad.user_attrs["train_steps"] < good.user_attrs["train_steps"]
    assert good.user_attrs["pruner"] == "median(startup_trials=1, warmup_evals=0)"
    assert first_sweep.total_train_steps == sum(t.user_attrs["train_steps"] for t in trials)
    # the objective is the recipe's metric, minimized here, and the best evaluation of a trial
    assert good.value == pytest.approx(min(good.intermediate_values.values()))
    assert first_sweep.best_number == study.best_trial.number
    # only the best trial's checkpoints stay
    trial_dirs = sorted(p.name for p in out.glob("trial-*"))
    assert trial_dirs == [f"trial-{study.best_trial.number:03d}"]
    assert list((out / trial_dirs[0]).glob("checkpoint-*"))
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 4 and "learning_rate" in rows[0]
    for name in ("optimization_history.png", "param_importances.png", "intermediate_values.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["counts"]["pruned"] >= 1 and summary["best_params"] == study.best_params


def test_best_yaml_round_trips_through_sentiment_train(first_sweep: Any) -> None:
    best_yaml = first_sweep.best_recipe
    raw = yaml.safe_load(best_yaml.read_text())
    assert "sweep" not in raw
    params = first_sweep.best_params
    assert raw["training"]["learning_rate"] == params["learning_rate"]
    assert raw["training"]["per_device_train_batch_size"] == params["per_device_train_batch_size"]
    assert raw["model"]["dropout"] == params["model.dropout"]
    assert run_cli(["train", str(best_yaml)]) == 0
    run_dir = Path(raw["training"]["output_dir"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test_size = json.loads((run_dir / "manifest.json").read_text())["split_sizes"]["test"]
    assert_split_metrics_consistent(metrics, "test", test_size)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hidden_dropout_prob"] == pytest.approx(params["model.dropout"])


def test_rerun_continues_to_five_and_retries_a_dead_workers_trial(
    first_sweep: Any, tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    out = tmp_path / "s"
    shutil.copytree(first_sweep.sweep_dir, out, ignore=shutil.ignore_patterns("best"))
    before = {t.number: (t.state, t.value) for t in load(out).trials}
    overrides = sweep_overrides(tiny_backbone, rt_dir, out, n_trials=5)
    # A worker that asked for trial 3, got its parameters, beat its heartbeat once and died.
    recipe = load_recipe(SWEEP_YAML, overrides)
    storage, shown = open_storage(recipe.sweep, out)
    study = open_study(recipe, storage, shown)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # heartbeats are meant for optimize()
        dead = study.ask()
    dead.suggest_float("model.dropout", 0.0, 0.2)
    dead.suggest_categorical("learning_rate", [0.001, 30.0])
    dead.suggest_categorical("per_device_train_batch_size", [16, 32])
    storage.record_heartbeat(dead._trial_id)
    time.sleep(3)  # older than sweep.grace_period (2 s): the next worker sees it as stale

    assert run_cli(["sweep", SWEEP_YAML, *overrides, "--retrain-best"]) == 0
    study = load(out)
    states = by_state(study)
    assert states.get("COMPLETE", 0) + states.get("PRUNED", 0) == 5
    assert states.get("FAIL") == 1 and set(states) <= {"COMPLETE", "PRUNED", "FAIL"}
    trials = {t.number: t for t in study.trials}
    assert trials[dead.number].state == optuna.trial.TrialState.FAIL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
        retries = [t for t in study.trials if retried(t) == dead.number]
    assert len(retries) == 1 and retries[0].params == trials[dead.number].params
    assert retries[0].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for number, (state, value) in before.items():  # earlier trials untouched
        assert (trials[number].state, trials[number].value) == (state, value)
    assert sorted(p.name for p in out.glob("trial-*")) == [f"trial-{study.best_trial.number:03d}"]
    metrics = json.loads((out / "best" / "metrics.json").read_text())  # --retrain-best
    assert "test_accuracy" in metrics
    # the same command once more: nothing left to run, nothing added
    assert run_cli(["sweep", SWEEP_YAML, *overrides]) == 0
    assert len(load(out).trials) == len(study.trials)


@pytest.mark.slow
def test_two_worker_processes_finish_exactly_n(
    tmp_path: Path, tiny_backbone: Path, rt_dir: Path
) -> None:
    out = tmp_path / "s"
    command = [
        sys.executable,
        "-m",
        "sentiment_hf.cli",
        "sweep",
        SWEEP_YAML,
        *sweep_overrides(tiny_backbone, rt_dir, out, n_trials=4),
        "sweep.pruner=none",
        # live workers on a loaded CI machine: a 2 s grace period could call a busy worker dead
        "sweep.heartbeat_interval=5",
        "sweep.grace_period=120",
    ]
    # one torch thread each: two workers share the machine's cores instead of fighting for them
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-3000:]
    study = load(out)
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 4
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    # anything beyond N is a surplus trial that was never trained
    for trial in study.trials:
        if trial.state.name == "FAIL":
            assert trial.user_attrs.get("surplus") and "train_steps" not in trial.user_attrs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "sweep.params.learning_rat={type: float, low: 1.0e-5, high: 1.0e-4}",
            "unknown hyperparameter 'learning_rat'",
        ),
        ("sweep.params.model.hidden_size={type: int, low: 8, high: 64}", "cannot be searched"),
        ("sweep.params.learning_rate.low=0.001", "must be below high"),
        (
            "sweep.params.weight_decay={type: float, low: 0.0, high: 0.1, log: true}",
            "log scale needs low > 0",
        ),
        ("sweep.params.per_device_train_batch_size.choices=[]", "non-empty list of choices"),
        (
            "sweep.params.per_device_train_batch_size={type: float, low: 8, high: 64}",
            "is an integer",
        ),
        ("sweep.params.learning_rate.scale=log", "unknown key 'scale'"),
        ("sweep.pruner=asha", "must be one of"),
        ("sweep.n_trials=many", "expected int"),
        ("sweep.metric=bleu", "not a metric"),
    ],
)
def test_bad_search_spaces_are_rejected(override: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(SentimentError, match=message):
        recipe = load_recipe(SWEEP_YAML, [f"training.output_dir={tmp_path}", override])
        sweep(recipe)
    assert not (tmp_path / "study.db").exists()


def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(
        ["sweep", f"training.output_dir={tmp_path}", "sweep.params.foo={low: 0, high: 1}"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: sweep.params.foo: unknown hyperparameter 'foo'")
    assert len(err.splitlines()) == 1
    code = run_cli(["train", str(REPO / "recipes" / "base.yaml"), "sweep.n_trials=3"])
    assert code == 2  # a sweep section without params is not a valid sweep section either


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("not a url", "is not a database URL"),
        ("nosuchdb://host/db", "cannot open sweep storage"),
        ("sqlite:////nonexistent-dir/sub/study.db", "unable to open database file"),
        ("mysql://user:hunter2@127.0.0.1:9/db", "no database driver"),
    ],
)
def test_storage_errors(storage: str, message: str, tmp_path: Path) -> None:
    recipe = load_recipe(
        SWEEP_YAML, [f"training.output_dir={tmp_path / 'x'}", f"sweep.storage={storage}"]
    )
    with pytest.raises(SentimentError, match=message) as info:
        sweep(recipe)
    assert "hunter2" not in str(info.value)
    assert not Path("/nonexistent-dir").exists()


def test_shipped_recipe_offline_names_the_fix_and_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """recipes/sweep.yaml reads the hub data set, which cannot load offline: one error line
    that says how to point at a local copy, and no study.db (nor folder) left behind; in a
    folder that existed, only what the sweep made goes."""
    out = tmp_path / "runs" / "sweep"
    code = run_cli(["sweep", SWEEP_YAML, f"training.output_dir={out}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and "data.source=" in err[-1], err
    assert not (tmp_path / "runs").exists()

    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SentimentError, match=r"data\.source="):
        sweep(load_recipe(SWEEP_YAML, [f"training.output_dir={out}"]))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_workers_creating_a_new_storage_at_once_all_get_it(tmp_path: Path) -> None:
    """Workers started together on a new SQLite file race to create the schema (a table or the
    alembic version row written twice); each must wait and open it, not exit 2. Real
    ``spawn``-ed processes on a real SQLite file, made to collide every time: each holds its
    first ``CREATE TABLE`` until both have found no schema (tests/sweep_workers.py). Two, as
    each spawned worker imports the sweep package afresh (seconds of CPU)."""
    import multiprocessing

    from sweep_workers import open_after_all_checked

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=open_after_all_checked, args=(str(tmp_path), barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [outcome for outcome, _ in outcomes] == ["ok"] * 2, outcomes
    # the race really happened: only one worker can create the first table, the other failed
    assert sum(raced for _, raced in outcomes) >= 1, outcomes
    assert [w.exitcode for w in workers] == [0] * 2


def test_changed_space_is_rejected_and_the_study_is_untouched(
    first_sweep: Any, tiny_backbone: Path, rt_dir: Path
) -> None:
    out = first_sweep.sweep_dir
    before = load(out)
    snapshot = ([(t.number, t.state, t.value) for t in before.trials], before.user_attrs)
    base = sweep_overrides(tiny_backbone, rt_dir, out, n_trials=6)
    for change in (
        "sweep.params.model.dropout.high=0.3",
        "sweep.params.per_device_train_batch_size=null",
        "sweep.metric=accuracy",
    ):
        extra = ["sweep.direction=maximize"] if change == "sweep.metric=accuracy" else []
        with pytest.raises(SentimentError, match="different search space") as info:
            sweep(load_recipe(SWEEP_YAML, [*base, change, *extra]))
        assert "sweep.study_name" in str(info.value)
    after = load(out)
    assert ([(t.number, t.state, t.value) for t in after.trials], after.user_attrs) == snapshot


def test_recipe_without_sweep_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SentimentError, match="no sweep: section"):
        sweep(load_recipe(REPO / "recipes" / "base.yaml", [f"training.output_dir={tmp_path}"]))


def wandb_runs(wandb_dir: Path) -> list[tuple[str, str, str]]:
    """(name, group, project) of each offline W&B run, read from its .wandb transaction log."""
    import struct

    from wandb.proto import wandb_internal_pb2

    runs = []
    for path in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb")):
        data, pos, buf = path.read_bytes(), 7, b""  # 7-byte file header, then 32 KiB blocks
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            if left < 7 or (kind == 0 and length == 0):
                pos += left  # block padding
                continue
            chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
            buf = chunk if kind in (1, 2) else buf + chunk  # full/first, or middle/last
            if kind in (1, 4):
                record = wandb_internal_pb2.Record()
                record.ParseFromString(buf)
                if record.WhichOneof("record_type") == "run":
                    runs.append((record.run.display_name, record.run.run_group, record.run.project))
    return runs


def test_wandb_logs_one_offline_run_per_trial_grouped_by_study(
    tmp_path: Path, tiny_backbone: Path, rt_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc key either: W&B must go offline
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    for name in ("WANDB_PROJECT", "WANDB_NAME", "WANDB_SILENT", "WANDB_RUN_GROUP"):
        monkeypatch.delenv(name, raising=False)  # restored (unset) after the test
    overrides = sweep_overrides(tiny_backbone, rt_dir, tmp_path / "s", n_trials=2)
    result = sweep(load_recipe(SWEEP_YAML, [*overrides, "tracking.wandb=true"]))
    import wandb

    wandb.teardown()  # later in-process W&B runs must not inherit this test's settings
    assert os.environ.get("WANDB_MODE") == "offline"
    runs = wandb_runs(tmp_path)
    assert sorted(runs) == [
        (f"trial-{row['number']:03d}", STUDY, "sentiment-hf") for row in result.trials
    ]


def test_a_worker_whose_trial_is_declared_dead_stops_cleanly(
    tmp_path: Path,
    tiny_backbone: Path,
    rt_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another worker fails a running trial whose heartbeat looks stale (what
    fail_stale_trials does); the worker that still runs it must stop without a traceback. The
    other worker (its own storage connection) acts at trial 0's first evaluation, while the trial
    certainly runs, instead of polling for it."""
    from sentiment_hf.sweep.trainer import SweepTrainer

    out = tmp_path / "s"
    recipe = load_recipe(SWEEP_YAML, sweep_overrides(tiny_backbone, rt_dir, out, n_trials=2))
    out.mkdir()
    storage, shown = open_storage(recipe.sweep, out)
    open_study(recipe, storage, shown)
    declared: list[int] = []
    report = SweepTrainer.report_evaluation

    def other_worker_fails_it_first(self: SweepTrainer, trial: Any, value: float) -> None:
        if not declared:
            other, _ = open_storage(recipe.sweep, out)
            running = optuna.load_study(study_name=STUDY, storage=other).get_trials(
                states=(optuna.trial.TrialState.RUNNING,)
            )
            assert [t.number for t in running] == [trial.number]
            other.set_trial_state_values(running[0]._trial_id, optuna.trial.TrialState.FAIL)
            declared.append(running[0].number)
        report(self, trial, value)

    monkeypatch.setattr(SweepTrainer, "report_evaluation", other_worker_fails_it_first)
    result = sweep(recipe)
    assert declared == [0]
    trials = load(out).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert trials[0].intermediate_values == {}  # its report after the failure never landed
    assert result.counts["fail"] == 1
    assert "declared this worker's trial dead" in caplog.text


@pytest.mark.slow
def test_pruning_replay_benchmark_reproduces_the_real_pruned_study(
    first_sweep: Any,
    tmp_path: Path,
    tiny_backbone: Path,
    rt_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """benchmarks/sweep_pruning.py claims its replay of a pruner over an unpruned study's curves
    makes the decisions a real pruned study makes; check it against first_sweep (median pruner,
    random sampler: every trial's parameters are independent of the history)."""
    out = tmp_path / "unpruned"
    unpruned = sweep(
        load_recipe(SWEEP_YAML, [*sweep_overrides(tiny_backbone, rt_dir, out), "sweep.pruner=none"])
    )
    assert unpruned.counts["pruned"] == 0
    # in this process (the script only reads the two studies): optuna's verbosity put back after
    monkeypatch.setattr(sys, "argv", ["sweep_pruning.py", str(out), str(first_sweep.sweep_dir)])
    verbosity = optuna.logging.get_verbosity()
    try:
        load_benchmark("sweep_pruning").main()
    finally:
        optuna.logging.set_verbosity(verbosity)
    lines = capsys.readouterr().out.splitlines()
    assert "  trials 0-2 have the same parameters in both studies" in lines
    assert "  replay of its pruner makes the same decisions on those trials: True" in lines
    real = next(line for line in lines if line.startswith("pruned ("))
    replayed = next(line for line in lines if line.strip().startswith("median, 1 startup"))
    # same best value, steps and decisions as the measured study (startup_trials=1 there)
    assert real.split()[2:6] == replayed.split()[4:8]
    assert real.split("points)")[1].split() == replayed.split("points)")[1].split()
