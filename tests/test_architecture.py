"""The package's shape holds: imports only point down its layers and no modules import each
other in a circle (import-linter, the contracts in pyproject.toml), the dependencies declared
are the ones used (deptry), and no module or function outgrows its limit."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "architecture_stats", REPO / "scripts" / "architecture_stats.py"
)
architecture_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(architecture_stats)

MAX_TOP_LEVEL_MODULES = 14
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter over the package under ``root`` (imported from there, not the venv)."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_import_contracts_hold() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # an upward import at module level: the data layer reaching the inference layer
        ("data/readers.py", "from sentiment_hf.inference import predictor"),
        # an upward import hidden in a function, where the circles used to hide
        ("tasks/policy.py", "def _probe():\n    from sentiment_hf.rundir import RunDir"),
        # a circle inside one package: the schema importing the recipe, which imports it
        ("config/schema.py", "from sentiment_hf.config import recipe"),
    ],
)
def test_import_contracts_fail_on_an_upward_import_or_a_cycle(
    tmp_path: Path, module: str, line: str
) -> None:
    """The contracts catch what they are for: a copy of the package with one added import
    that points up, or closes a circle, breaks them (the copy is linted, the tree untouched)."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "sentiment_hf", copy / "sentiment_hf")
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "sentiment_hf" / module
    target.write_text(target.read_text(encoding="utf-8") + "\n" + textwrap.dedent(line) + "\n")
    done = _lint_imports(copy)
    assert done.returncode != 0, done.stdout[-3000:]
    assert "BROKEN" in done.stdout


def test_declared_dependencies_are_the_used_ones() -> None:
    """deptry: nothing imported that pyproject.toml does not declare, nothing declared unused."""
    deptry = Path(sys.executable).with_name("deptry")
    done = subprocess.run([str(deptry), "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def test_no_module_or_function_outgrows_its_limit() -> None:
    """At most 14 modules at the top, none over 400 lines, no function over 80, no cycle
    (grimp over every module, function-level imports included)."""
    assert len(architecture_stats.top_level_modules()) <= MAX_TOP_LEVEL_MODULES
    assert architecture_stats.long_modules(MAX_MODULE_LINES) == []
    assert architecture_stats.cycles() == []
    assert architecture_stats.long_functions(MAX_FUNCTION_LINES) == []
