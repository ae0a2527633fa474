"""The `sentiment` CLI end to end: train → eval → predict, and bad input. Training and eval run
the console entry point in this process (tests/cli_inprocess.py); the console script, bad input
and predict also run in real subprocesses."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_inprocess import invoke, run_main
from conftest import REPO, assert_split_metrics_consistent, tiny_recipe_overrides

BASE = str(REPO / "recipes" / "base.yaml")


def sentiment(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "sentiment_hf.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd or REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=600,
    )


def test_version_is_the_installed_packages(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib.metadata import version

    done = run_main(["--version"], capsys, monkeypatch)
    assert done.code == 0 and done.stdout == f"sentiment-hf {version('sentiment-hf')}\n"


def test_console_script_is_installed() -> None:
    script = shutil.which("sentiment", path=str(Path(sys.executable).parent))
    assert script is not None
    out = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for command in ("train", "eval", "predict"):
        assert command in out.stdout


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, rt_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    started = time.monotonic()
    result = invoke(["train", BASE, *tiny_recipe_overrides(tiny_backbone, rt_dir, run_dir)])
    TRAIN_WALL_S[run_dir] = time.monotonic() - started
    assert result.code == 0, result.stderr[-2000:]
    assert f"run saved to {run_dir}" in result.stdout
    return run_dir


#: How long the `train` command of each fixture run took, timed from outside.
TRAIN_WALL_S: dict[Path, float] = {}


def test_train_writes_the_run_directory(cli_run: Path) -> None:
    metrics = json.loads((cli_run / "metrics.json").read_text())
    assert_split_metrics_consistent(metrics, "eval", 64)
    assert_split_metrics_consistent(metrics, "test", 64)
    manifest = json.loads((cli_run / "manifest.json").read_text())
    assert len(manifest["data_fingerprint"]) == 64
    assert manifest["packages"]["transformers"]
    assert manifest["device"]["cpu_count"] == os.cpu_count()
    # the command's own time: at least the Trainer's loop, at most the whole command
    assert manifest["train_runtime_s"] <= manifest["wall_time_s"] <= TRAIN_WALL_S[cli_run]
    assert manifest["split_sizes"] == {"train": 256, "validation": 64, "test": 64}
    assert list(cli_run.glob("checkpoint-*")), "checkpoints are kept in checkpoint-N/"


def test_eval_writes_reports(
    cli_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["eval", str(cli_run), "--split", "test", "--output", str(tmp_path)]
    shown = run_main(args, capsys, monkeypatch)  # the summary table
    assert shown.code == 0, shown.stderr[-2000:]
    result = run_main([*args, "--json"], capsys, monkeypatch)
    assert result.code == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)
    assert "{" not in shown.stdout and len(shown.stdout.splitlines()) < 30
    assert re.search(
        rf"accuracy\s+{metrics['test_accuracy']:.4f}\s+{metrics['test_accuracy_ci95'][0]:.4f} to",
        shown.stdout,
    )
    assert re.search(
        rf"ECE\s+{metrics['test_ece_uncalibrated']:.4f}\s+{metrics['test_ece']:.4f}", shown.stdout
    )
    assert "test: 1066 texts" in shown.stdout
    assert metrics["test_samples"] == 1066  # eval uses the whole split, not the training slice
    saved = json.loads((tmp_path / "test_metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"]
    png = (tmp_path / "test_confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # csv, not splitlines: rt-polarity's latin-1 text holds U+0085, which splitlines breaks at
    with open(tmp_path / "test_misclassified.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    wrong = round((1 - metrics["test_accuracy"]) * 1066)
    assert rows[0] == ["index", "text", "label", "predicted", "score"]
    assert len(rows) == wrong + 1 and all(row[2] != row[3] for row in rows[1:])


def test_eval_on_other_data(
    cli_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "mini"
    data.mkdir()
    (data / "test.csv").write_text("text,label\na masterpiece,pos\na disaster,neg\nfine,pos\n")
    (data / "train.csv").write_text("text,label\nx,pos\ny,neg\n")
    (data / "validation.csv").write_text("text,label\nx,pos\ny,neg\n")
    args = ["eval", str(cli_run), "--data", str(data), "--output", str(tmp_path / "r"), "--json"]
    result = run_main(args, capsys, monkeypatch)
    assert result.code == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["test_samples"] == 3


def test_predict_texts_json_file_and_stdin(
    cli_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One real process (the console path); JSON, --file and stdin in-process."""
    texts = ["a gorgeous, witty, seductive movie.", "dull and overlong"]
    plain = sentiment("predict", str(cli_run), *texts)
    assert plain.returncode == 0, plain.stderr[-2000:]
    lines = plain.stdout.strip().splitlines()
    assert [line.split("\t")[2] for line in lines] == texts
    assert all(line.split("\t")[0] in {"neg", "pos"} for line in lines)

    as_json = run_main(["predict", str(cli_run), "--json", *texts], capsys, monkeypatch)
    assert as_json.code == 0, as_json.stderr[-2000:]
    rows = [json.loads(line) for line in as_json.stdout.strip().splitlines()]
    assert [r["text"] for r in rows] == texts
    assert [r["label"] for r in rows] == [line.split("\t")[0] for line in lines]
    for row, line in zip(rows, lines, strict=True):
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["score"] == max(row["probabilities"].values())
        assert f"{row['score']:.4f}" == line.split("\t")[1]

    listing = tmp_path / "in.txt"
    listing.write_text("\n".join(texts) + "\n")
    from_file = run_main(
        ["predict", str(cli_run), "--file", str(listing), "--json"], capsys, monkeypatch
    )
    assert [json.loads(x) for x in from_file.stdout.strip().splitlines()] == rows
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(texts)))
    from_stdin = run_main(["predict", str(cli_run), "--json"], capsys, monkeypatch)
    assert [json.loads(x) for x in from_stdin.stdout.strip().splitlines()] == rows


def test_existing_run_is_not_clobbered(
    cli_run: Path,
    tiny_backbone: Path,
    rt_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = (cli_run / "metrics.json").read_bytes()
    args = ["train", BASE, *tiny_recipe_overrides(tiny_backbone, rt_dir, cli_run)]
    result = run_main(args, capsys, monkeypatch)
    assert result.code == 2
    assert "already holds a run" in result.stderr and "--resume" in result.stderr
    assert (cli_run / "metrics.json").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "no-such-recipe.yaml"], "recipe file 'no-such-recipe.yaml' not found"),
        (["train", BASE, "training.learning_rate"], "has no '='"),
        (["train", BASE, "model.colour=blue"], "unknown key 'colour'"),
        (["train", BASE, "model.max_length=long"], "expected int"),
        (
            ["train", BASE, "data.source=./missing-dir"],
            "data.source path './missing-dir' does not exist",
        ),
        (
            ["train", BASE, "model.backbone=acme/not-cached", "data.source=__RT__"],
            "not found offline",
        ),
        (["eval", "__TMP__"], "is not a trained model directory"),
        (["predict", "__TMP__", "hello"], "is not a trained model directory"),
        (["predict", "__RUN__"], "no input texts"),
        # the server answers 422 for these texts; the CLI refuses them too
        (["predict", "__RUN__", "fine", ""], "TEXT argument 2 is empty or whitespace-only"),
        (["predict", "__RUN__", " \t\u3000"], "TEXT argument 1 is empty or whitespace-only"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str],
    needle: str,
    tmp_path: Path,
    rt_dir: Path,
    cli_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process through the CLI's own entry point (the subprocess path is tested below)."""
    from sentiment_hf.cli import main

    subs = {"__TMP__": str(tmp_path), "__RUN__": str(cli_run), "__RT__": str(rt_dir)}
    args = [a.replace("__RT__", str(rt_dir)) for a in args]
    args = [subs.get(a, a) for a in args]
    monkeypatch.chdir(tmp_path)  # nothing lands in the repo
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(sys, "argv", ["sentiment", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-2000:]
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and needle in error_lines[0], err[-2000:]
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_bad_input_in_a_real_process_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = sentiment("train", BASE, "model.colour=blue", stdin="", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr[-2000:])
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "unknown key 'colour'" in result.stderr and "Traceback" not in result.stderr
