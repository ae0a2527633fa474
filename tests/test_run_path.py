"""Every command that takes a run directory says what is wrong with a path that is none: a file
is "a file, not a run directory" (not "does not exist"), a missing path does not exist."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_inprocess import run_main

#: Each command that takes RUN, with the other arguments it needs to reach the run's check.
RUN_COMMANDS = {
    "eval": [],
    "calibrate": [],
    "explain": ["a fine film"],
    "export": [],
    "push-to-hub": ["--repo-id", "someone/sentiment", "--dry-run"],
    "serve": ["--port", "0"],
    "drift": ["--requests", "requests.db"],
    "predict": ["a fine film"],
}


@pytest.mark.parametrize("command", sorted(RUN_COMMANDS))
def test_a_file_given_as_the_run_is_called_a_file(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "some_file.txt"
    notes.write_text("not a model\n")
    result = run_main([command, str(notes), *RUN_COMMANDS[command]], capsys, monkeypatch)
    assert result.code == 2, (result.code, result.stderr[-2000:])
    assert len(result.error_lines) == 1, result.stderr[-2000:]
    line = result.error_lines[0]
    assert "does not exist" not in line, line
    assert f"{str(notes)!r} is a file, not a run directory" in line, line
    assert "the folder `sentiment train` wrote" in line and "config.json" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some_file.txt"]  # nothing written

    missing = run_main([command, "no-such-run", *RUN_COMMANDS[command]], capsys, monkeypatch)
    assert missing.code == 2 and len(missing.error_lines) == 1, missing.stderr[-2000:]
    assert "'no-such-run' does not exist" in missing.error_lines[0]


def test_a_file_inside_a_run_points_at_its_folder(
    tiny_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`sentiment eval runs/x/model.safetensors`: the error names the run folder to pass."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = run / "model.safetensors"
    result = run_main(["predict", str(weights), "a fine film"], capsys, monkeypatch)
    assert result.code == 2 and len(result.error_lines) == 1, result.stderr[-2000:]
    line = result.error_lines[0]
    assert f"{str(weights)!r} is a file, not a run directory" in line, line
    assert f"pass its folder {str(run)!r}" in line, line


@pytest.mark.parametrize(
    "command",
    [
        ["predict", "__RUN__", "fine"],
        ["eval", "__RUN__", "--no-explain"],
        ["export", "__RUN__", "--max-samples", "8"],
    ],
    ids=lambda c: c[0],
)
def test_damaged_weights_are_one_error_line(
    command: list[str], tiny_run: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """A cut-short model.safetensors (an interrupted copy) is named, not a traceback."""
    run = Path(
        shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoint-*"))
    )
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_main([c.replace("__RUN__", str(run)) for c in command], capsys, monkeypatch)
    assert result.code == 2, result.stderr[-2000:]
    assert len(result.error_lines) == 1 and "Traceback" not in result.stderr
    assert "model.safetensors" in result.error_lines[0] or "weights of" in result.error_lines[0]
    assert "damaged or incomplete" in result.error_lines[0]
