"""`sentiment sweep` on a real PostgreSQL server: two worker processes, pruning on, exactly N.

The module's fixture creates a throwaway cluster with Debian's ``postgresql`` binaries (initdb in
a temp dir, password authentication, a free loopback port; as the ``postgres`` user when the
tests run as root, which PostgreSQL refuses), and stops it at teardown. Two `sentiment sweep`
processes then share one study on it, the storage URL reaching them the documented way: the
recipe says ``sweep.storage=env:NAME`` and the URL with its password is in the environment.

The search space makes pruning certain (see ``test_sweep.py``): with sampler seed 8 trials 0 and
1 draw ``learning_rate=0.001`` and trials 2 and 3 ``learning_rate=30``, which blows the
validation loss up at the first evaluation. Trials 2 and 3 are created only after a worker
finished its first trial, and the first finished trial is always complete (a median pruner
prunes nothing before one trial is complete), so both are pruned at evaluation 1 whichever
worker runs them.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import REPO, tiny_recipe_overrides
from servers import PORT_IN_USE, PortInUse, start_on_some_port

from sentiment_hf.cli import main as cli_main
from sentiment_hf.config.recipe import load_recipe
from sentiment_hf.errors import SentimentError
from sentiment_hf.sweep import sweep

# A PostgreSQL server started with Debian's binaries as the postgres user, workers forked.
pytestmark = pytest.mark.linux_only

SWEEP_YAML = str(REPO / "recipes" / "sweep.yaml")
STUDY = "pg-tiny"
N_TRIALS = 4
USER = "sentiment"
PASSWORD = "pg-Pa55-7f3a9c"  # must never appear in output, files or errors
ENV_VAR = "SENTIMENT_TEST_SWEEP_STORAGE"


def postgres_bin() -> Path:
    """The directory of ``initdb`` and ``pg_ctl`` (Debian's versioned dir, or PATH)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    if not found:
        pytest.fail(
            "PostgreSQL binaries (initdb, pg_ctl) not found: install Debian's postgresql package "
            "(apt-get install postgresql)"
        )
    return Path(found).parent


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on loopback with database ``sweeps``; yields its URL (with password)."""
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="sentiment-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "pwfile"
    as_owner: list[str] = []

    def run(*argv: str) -> None:
        done = subprocess.run([*as_owner, *argv], capture_output=True, text=True, timeout=120)
        server_log = log.read_text() if log.is_file() else ""
        assert done.returncode == 0, f"{argv[0]} failed: {done.stdout}{done.stderr}{server_log}"

    try:
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:  # postgres refuses to run as root: the cluster is `postgres`'s
            import pwd

            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(
                    "running as root needs the `postgres` user (apt-get install postgresql)"
                )
            for path in (root, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            as_owner = ["runuser", "-u", "postgres", "--"]
        run(str(bindir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
            "-A", "scram-sha-256", "--no-sync", "-E", "UTF8", "--no-locale")  # fmt: skip

        def start(port: int) -> int:
            """``pg_ctl start -w``: it polls the new server (60 s) and fails if it exits."""
            options = (
                f"-p {port} -h 127.0.0.1 -k {root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            seen = log.stat().st_size if log.is_file() else 0
            done = subprocess.run(
                [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o",
                 options, "-w", "-t", "60", "start"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if done.returncode == 0:
                return port
            server_log = log.read_bytes()[seen:].decode(errors="replace") if log.is_file() else ""
            output = f"{done.stdout}{done.stderr}{server_log}"
            if PORT_IN_USE.search(server_log):
                raise PortInUse(output)
            pytest.fail(f"pg_ctl start failed:\n{output[-3000:]}")

        port = start_on_some_port(start, "PostgreSQL")
        import psycopg

        dsn = f"host=127.0.0.1 port={port} user={USER} password={PASSWORD} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE sweeps")
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/sweeps"
    finally:
        if (data / "postmaster.pid").exists():  # running, or pg_ctl gave up waiting on it
            subprocess.run([*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=120)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def pg_overrides(backbone: Path, data: Path, out: Path) -> list[str]:
    """recipes/sweep.yaml made tiny, on the PostgreSQL study named by ``ENV_VAR``."""
    return [
        *tiny_recipe_overrides(backbone, data, out),
        "training.num_train_epochs=1",
        "data.max_train_samples=128",
        "data.max_eval_samples=32",
        "data.max_test_samples=32",
        f"sweep.storage=env:{ENV_VAR}",
        f"sweep.n_trials={N_TRIALS}",
        f"sweep.study_name={STUDY}",
        "sweep.sampler=random",
        "sweep.seed=8",
        "sweep.pruner=median",
        "sweep.startup_trials=1",
        "sweep.evals_per_epoch=2",
        "sweep.metric=loss",
        "sweep.direction=minimize",
        # live workers on a loaded CI machine: a short grace period could call a busy worker dead
        "sweep.heartbeat_interval=5",
        "sweep.grace_period=120",
        "sweep.params.weight_decay=null",
        "sweep.params.learning_rate={type: categorical, choices: [0.001, 30.0]}",
        "sweep.params.model.dropout={type: float, low: 0.0, high: 0.2}",
    ]


def _worker(argv: list[str], env: dict[str, str], out: str, err: str) -> None:
    """A forked child that runs ``sentiment ARGV`` as the console script would, then exits.

    Forked from this process, whose torch and transformers are already imported, instead of a
    fresh interpreter: that saves each worker about 20 s of CPU on imports. Its stdout and stderr
    go to files (file descriptors included, so nothing bypasses them), logging is set up by the
    CLI's own ``main`` as in a new process, and torch uses one thread (two workers share the
    cores; OpenMP after fork with one thread is safe).
    """
    code = 1
    try:
        import logging

        import torch

        os.environ.update(env)
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        root = logging.getLogger()
        for handler in list(root.handlers):  # pytest's capture handlers: main() sets its own
            root.removeHandler(handler)
        for handler in logging.getLogger("optuna").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
        torch.set_num_threads(1)
        sys.argv = ["sentiment", *argv]
        try:
            cli_main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no pytest finalizers in the child


@pytest.fixture(scope="module")
def two_workers(
    postgres: str, tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, rt_dir: Path
) -> dict[str, Any]:
    """Two `sentiment sweep` worker processes started together on one PostgreSQL study."""
    import multiprocessing

    base = tmp_path_factory.mktemp("pgsweep")
    out = base / "s"
    argv = ["sweep", SWEEP_YAML, *pg_overrides(tiny_backbone, rt_dir, out)]
    env = {ENV_VAR: postgres, "PYTHONWARNINGS": "ignore"}
    logs = [(str(base / f"w{i}.out"), str(base / f"w{i}.err")) for i in range(2)]
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_worker, args=(argv, env, *paths)) for paths in logs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    outputs = [(Path(o).read_text(), Path(e).read_text()) for o, e in logs]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.exitcode == 0, err[-3000:]
    url = postgres.replace("://", "+psycopg://", 1)
    study = optuna.load_study(study_name=STUDY, storage=url)
    pids = [w.pid for w in workers]
    return {"out": out, "outputs": outputs, "study": study, "argv": argv, "url": url, "pids": pids}


def test_two_workers_finish_exactly_n_trials_with_pruning(two_workers: dict[str, Any]) -> None:
    study = two_workers["study"]
    trials = sorted(study.trials, key=lambda t: t.number)
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # no trial number twice, none missing
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                 optuna.trial.TrialState.PRUNED)]  # fmt: skip
    assert [t.number for t in finished] == list(range(N_TRIALS))
    # anything beyond N is a surplus trial that was never trained
    for trial in trials[N_TRIALS:]:
        assert trial.state == optuna.trial.TrialState.FAIL
        assert trial.user_attrs.get("surplus") and "train_steps" not in trial.user_attrs
    # the pruner saw other processes' trials through PostgreSQL: the diverging ones stop at 1
    for trial in trials[2:N_TRIALS]:
        assert trial.params["learning_rate"] == 30.0
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert sorted(trial.intermediate_values) == [1]
    good = trials[:2]
    assert {t.params["learning_rate"] for t in good} == {0.001}
    assert optuna.trial.TrialState.COMPLETE in {t.state for t in good}
    assert study.best_trial.number in (0, 1)
    # both processes ran trials (they start together; a trial takes longer than the start-up)
    pids = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in finished}
    assert pids == set(two_workers["pids"])


def test_report_names_the_best_trial_and_masks_the_password(
    two_workers: dict[str, Any],
    postgres: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same command once more (nothing left to run) reports the study; here the URL is
    written in the command itself, which the report masks and a warning advises against."""
    study = two_workers["study"]
    argv = [*two_workers["argv"], f"sweep.storage={postgres}"]
    old = sys.argv
    sys.argv = ["sentiment", *argv]
    try:
        cli_main()
    except SystemExit as exc:
        assert not exc.code
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    best = study.best_trial
    port = postgres.rsplit(":", 1)[1].split("/")[0]
    assert f"postgresql+psycopg://{USER}:***@127.0.0.1:{port}/sweeps" in captured.out
    assert f"{N_TRIALS}/{N_TRIALS} finished" in captured.out
    assert f"best: trial {best.number} loss={best.value:.4f}" in captured.out
    again = optuna.load_study(study_name=STUDY, storage=two_workers["url"])
    assert len(again.trials) == len(study.trials)  # nothing added
    summary = json.loads((two_workers["out"] / "sweep.json").read_text())
    assert summary["best_number"] == best.number and summary["counts"]["finished"] == N_TRIALS
    assert summary["storage"].endswith(f"{USER}:***@127.0.0.1:{port}/sweeps")
    seen = captured.out + captured.err + caplog.text
    for out, err in two_workers["outputs"]:
        assert f"{USER}:***@127.0.0.1:{port}/sweeps" in out  # each worker's report
        seen += out + err
    assert PASSWORD not in seen
    assert "sweep.storage=env:NAME" in caplog.text  # the warning: a password on the command line


def test_no_file_the_sweep_wrote_holds_the_password(two_workers: dict[str, Any]) -> None:
    out = two_workers["out"]
    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"trials.csv", "sweep.json", "best.yaml"} <= names
    for path in files:
        assert PASSWORD.encode() not in path.read_bytes(), path


def test_bad_password_and_unset_variable_are_one_line_errors(
    postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = postgres.replace(PASSWORD, "not-the-Pa55word")
    monkeypatch.setenv(ENV_VAR, wrong)
    recipe = load_recipe(
        SWEEP_YAML, [f"training.output_dir={tmp_path / 'x'}", f"sweep.storage=env:{ENV_VAR}"]
    )
    with pytest.raises(SentimentError, match="password authentication failed") as info:
        sweep(recipe)
    message = str(info.value)
    assert "not-the-Pa55word" not in message and f"{USER}:***@" in message
    assert len(message.splitlines()) == 1
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(SentimentError, match=f"environment variable {ENV_VAR} is not set"):
        sweep(recipe)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (  # nothing listens on port 9: the bare postgresql:// URL gets the psycopg driver
            "postgresql://user:hunter2@127.0.0.1:9/db",
            r"cannot open sweep storage postgresql\+psycopg://user:\*\*\*@127\.0\.0\.1:9/db: ",
        ),
        (
            "postgres://user:hunter2@host:notaport/db",
            r"'postgresql\+psycopg://user:\*\*\*@host:notaport/db' is not a database URL",
        ),
        ("user:hunter2@host/db", r"'user:\*\*\*@host/db' is not a database URL"),
        ("env:1-not-a-name", "after env: give an environment variable's name"),
    ],
)
def test_storage_url_errors_never_show_the_password(
    storage: str, message: str, tmp_path: Path
) -> None:
    recipe = load_recipe(
        SWEEP_YAML, [f"training.output_dir={tmp_path / 'x'}", f"sweep.storage={storage}"]
    )
    with pytest.raises(SentimentError, match=message) as info:
        sweep(recipe)
    assert "hunter2" not in str(info.value) and len(str(info.value).splitlines()) == 1
    assert not (tmp_path / "x").exists()
