"""Run the ``sentiment`` console entry point in this process (no interpreter start-up)."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Outcome:
    """Exit code, stdout and stderr of one in-process CLI call."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def _exit_code() -> int:
    from sentiment_hf.cli import main

    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run_main(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Outcome:
    """``sentiment ARGS`` through :func:`sentiment_hf.cli.main`, as the console script runs it."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["sentiment", *args])
    code = _exit_code()
    out, err = capsys.readouterr()
    return Outcome(code, out, err)


def invoke(args: list[str]) -> Outcome:
    """:func:`run_main` without pytest's function-scoped fixtures (for module fixtures)."""
    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["sentiment", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _exit_code()
    finally:
        sys.argv = argv
    return Outcome(code, out.getvalue(), err.getvalue())
