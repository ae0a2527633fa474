"""Run the ``sentiment`` console entry point in this process (no interpreter start-up)."""

from __future__ import annotations

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


def run_main(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Outcome:
    """``sentiment ARGS`` through :func:`sentiment_hf.cli.main`, as the console script runs it."""
    from sentiment_hf.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["sentiment", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Outcome(code, out, err)
