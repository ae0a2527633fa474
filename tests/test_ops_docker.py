"""Dockerfile and .dockerignore, checked without a Docker engine (none runs on these machines).

hadolint lints the real file; the build is emulated: the files the Dockerfile COPYs are laid out
in an empty folder, the builder stage's own ``uv sync`` commands install the lock from there into
a fresh environment (offline, from the uv cache), and the image's ENTRYPOINT + CMD run from it.
GitHub's ``docker`` workflow builds the real image and runs the same entry commands inside it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.linux_only  # Linux tools; run on the Linux CI legs


@dataclass
class Stage:
    """One build stage: its base, name and instructions (continuations joined)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, in order."""
    logical, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append(buf + stripped)
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            if keyword == "ARG" and "=" in rest:
                key, _, value = rest.partition("=")
                args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


def stage_chain(stages: list[Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, base first."""
    by_name = {s.name: s for s in stages if s.name}
    chain = [by_name[name]]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return chain


def last_json(chain: list[Stage], keyword: str) -> list[str]:
    for stage in reversed(chain):
        values = stage.all(keyword)
        if values:
            return json.loads(values[-1])
    raise AssertionError(f"no {keyword} in {[s.name for s in chain]}")


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile((REPO / "Dockerfile").read_text(encoding="utf-8"))


def test_hadolint_finds_nothing_at_any_level() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "--failure-threshold", "style",
         "--disable-ignore-pragma", "Dockerfile"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_really_lints(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\n")
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest
    assert "DL3008" in result.stdout  # unpinned apt package


def test_stages_targets_user_and_locked_install(dockerfile: tuple[dict, list[Stage]]) -> None:
    args, stages = dockerfile
    names = [s.name for s in stages]
    assert {"builder", "runtime", "train", "serve"} <= set(names)
    syncs = [r for r in stage_chain(stages, "builder")[-1].all("RUN") if "uv sync" in r]
    assert len(syncs) == 2, "dependencies layer, then the project"
    for command in syncs:
        assert "--locked" in command and "--no-dev" in command, command
    assert "--no-install-project" in syncs[0]
    for target in ("train", "serve"):
        chain = stage_chain(stages, target)
        assert chain[0].name == "runtime"
        assert last_json(chain, "ENTRYPOINT") == ["sentiment"]
        user = [u for s in chain for u in s.all("USER")][-1]
        known = {
            **args,
            **dict(a.partition("=")[::2] for s in chain for a in s.all("ARG") if "=" in a),
        }
        uid = re.sub(r"\$\{(\w+)\}", lambda m, known=known: known.get(m[1], ""), user)
        assert uid.split(":")[0].isdigit() and int(uid.split(":")[0]) != 0, f"USER {user}"
    assert last_json(stage_chain(stages, "train"), "CMD")[:2] == ["train", "recipes/base.yaml"]
    serve_cmd = last_json(stage_chain(stages, "serve"), "CMD")
    assert serve_cmd[:2] == ["serve", "/models/model"]
    assert serve_cmd[serve_cmd.index("--port") + 1] in stage_chain(stages, "serve")[-1].all(
        "EXPOSE"
    )


def _glob(pattern: str) -> re.Pattern[str]:
    """Go filepath.Match semantics as Docker uses them: ``*`` and ``?`` stop at ``/``."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or a parent."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _glob(raw.lstrip("!").strip("/"))
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


def _copy_sources(stages: list[Stage]) -> list[str]:
    sources = []
    for stage in stages:
        for args in stage.all("COPY"):
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            if "--from=" in args:
                continue
            sources += words[:-1]
    return sources


def test_dockerignore_admits_exactly_what_is_copied(dockerfile: tuple[dict, list[Stage]]) -> None:
    _, stages = dockerfile
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in _copy_sources(stages):
        probe = source.rstrip("/")
        if (REPO / probe).is_dir():
            probe += "/__init__.py" if (REPO / probe / "__init__.py").exists() else "/base.yaml"
        assert not _dockerignore_excludes(patterns, probe), f"COPY {source} is excluded"
    for kept_out in (".venv/bin/python", ".git/HEAD", "runs/base/model.safetensors",
                     "datasets/rt-polarity/rt-polarity.pos", "tests/conftest.py", "site/index.html",
                     "wandb/run/x", "sentiment_hf/__pycache__/cli.pyc", ".env"):  # fmt: skip
        assert _dockerignore_excludes(patterns, kept_out), f"{kept_out} would enter the context"


def test_emulated_build_installs_the_lock_and_runs_the_entry_commands(
    dockerfile: tuple[dict, list[Stage]], tmp_path: Path
) -> None:
    """Builder: COPY sources + the same `uv sync` commands; runtime: ENTRYPOINT + CMD --help."""
    _, stages = dockerfile
    builder = stage_chain(stages, "builder")[-1]
    context = tmp_path / "src"
    context.mkdir()
    for args in builder.all("COPY"):  # Docker semantics: a directory's contents go to dest
        if "--from=" in args:
            continue
        *sources, dest = shlex.split(args)
        dest_path = context / dest
        for source in sources:
            src = REPO / source
            if src.is_dir():
                shutil.copytree(
                    src, dest_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            elif dest.endswith("/") or len(sources) > 1:
                dest_path.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest_path / src.name)
            else:
                shutil.copy2(src, dest_path)
    venv = tmp_path / "opt-venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_LINK_MODE": "hardlink",  # the image copies; hardlinks from the cache keep this fast
        "UV_PYTHON": sys.executable,
        "UV_NO_PROGRESS": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    for run in builder.all("RUN"):
        command = run[run.index("uv sync") :]
        result = subprocess.run(
            [*shlex.split(command), "--offline"], cwd=context, env=env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    runtime = tmp_path / "app"
    (runtime / "cloud").mkdir(parents=True)
    shutil.copytree(REPO / "recipes", runtime / "recipes")
    shutil.copy2(REPO / "cloud" / "secret_env.py", runtime / "cloud" / "secret_env.py")
    run_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "UV_"))
    }
    run_env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    python = venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import sentiment_hf; print(sentiment_hf.__file__)"],
        cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), (
        "the package must be installed, not linked"
    )
    for target in ("train", "serve"):
        chain = stage_chain(stages, target)
        entry, cmd = last_json(chain, "ENTRYPOINT"), last_json(chain, "CMD")
        for argv in ([*entry, "--help"], [*entry, cmd[0], "--help"]):
            result = subprocess.run(
                argv, cwd=runtime, env=run_env, capture_output=True, text=True, timeout=180
            )
            assert result.returncode == 0, f"{argv}: {result.stderr[-1500:]}"
            assert "Usage" in result.stdout
    check = subprocess.run(
        [str(python), "-c", "from sentiment_hf.recipe import load_recipe; "
         "print(load_recipe('recipes/base.yaml').name)"],
        cwd=runtime, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0 and check.stdout.strip() == "base", check.stderr
