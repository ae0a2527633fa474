"""GitHub Actions, composite actions, pre-commit and the Makefile, checked offline.

GitHub itself cannot be reached from here: the workflows are linted by actionlint (with
shellcheck on every ``run:`` script), their triggers and permissions are asserted, and the
composite actions' scripts run for real on local files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONS = REPO / ".github" / "actions"
README_TEST_COMMAND = "uv run pytest --cov=sentiment_hf --cov-report=term"
MAKE_TARGETS = [
    "help",
    "setup",
    "train",
    "sweep",
    "eval",
    "test",
    "lint",
    "format",
    "docs",
    "serve",
    "loadtest",
    "docker-train",
    "docker-serve",
    "data-pull",
    "data-push",
]

pytestmark = pytest.mark.linux_only  # Linux tools; run on the Linux CI legs


def tool_env() -> dict[str, str]:
    """The environment with the project's venv tools (actionlint, shellcheck, uv...) first."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def load_workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps_of(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


# --- actionlint and shellcheck ------------------------------------------------------------------


def test_actionlint_with_shellcheck_is_clean() -> None:
    assert shutil.which("shellcheck", path=tool_env()["PATH"]), "shellcheck must be on PATH"
    result = subprocess.run(
        [str(BIN / "actionlint"), "-no-color"],
        cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo $UNQUOTED ${{ github.event.pull_request.title }}\n"
        "      - uses: actions/checkout@v5\n        with:\n          no-such-input: 1\n"
    )
    result = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", str(bad)],
        cwd=tmp_path, env=tool_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "SC2086" in result.stdout  # shellcheck ran on the script
    assert "potentially untrusted" in result.stdout  # script injection
    assert "no-such-input" in result.stdout  # inputs of a known action


def test_composite_action_scripts_pass_shellcheck(tmp_path: Path) -> None:
    scripts = 0
    for action in sorted(ACTIONS.glob("*/action.yml")):
        spec = yaml.safe_load(action.read_text(encoding="utf-8"))
        assert spec["runs"]["using"] == "composite", action
        for i, step in enumerate(spec["runs"]["steps"]):
            if "run" not in step:
                continue
            assert step.get("shell") == "bash", f"{action}: step {i} needs shell: bash"
            assert "${{" not in step["run"], f"{action}: pass inputs through env, not inline"
            script = tmp_path / f"{action.parent.name}-{i}.sh"
            script.write_text("#!/usr/bin/env bash\n" + step["run"])
            result = subprocess.run(
                [str(BIN / "shellcheck"), str(script)], capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, f"{action} step {i}:\n{result.stdout}"
            scripts += 1
    assert scripts >= 4


# --- workflow contracts ---------------------------------------------------------------------------


def test_every_workflow_is_there_and_uses_only_existing_local_actions() -> None:
    names = {p.name for p in WORKFLOWS.glob("*.yml")}
    assert {"tests.yml", "lint.yml", "docker.yml", "data-change.yml", "model-registry.yml",
            "docs.yml"} <= names  # fmt: skip
    for name in names:
        for step in steps_of(load_workflow(name)):
            uses = step.get("uses", "")
            if uses.startswith("./"):
                assert (REPO / uses / "action.yml").is_file(), f"{name}: {uses}"


def test_no_workflow_needs_a_secret() -> None:
    for path in [*WORKFLOWS.glob("*.yml"), *ACTIONS.glob("*/action.yml")]:
        text = path.read_text(encoding="utf-8")
        assert "secrets." not in text, f"{path.name} reads a secret: forks would fail"
        assert "credentials_json" not in text, f"{path.name}: use workload identity, not a key"


def test_oidc_token_only_where_google_cloud_or_pages_is_used() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        workflow = load_workflow(path.name)
        perms = [workflow.get("permissions", {})]
        perms += [job.get("permissions", {}) for job in workflow["jobs"].values()]
        wants_token = any(p.get("id-token") == "write" for p in perms)
        text = path.read_text(encoding="utf-8")
        uses_it = "./.github/actions/gcp-auth" in text or "deploy-pages" in text
        assert wants_token == uses_it, path.name


def test_tests_workflow_matrix_and_command() -> None:
    """Linux legs run the README's command with the apt tools installed; macOS and Windows run
    the tests not marked ``linux_only`` (a marker pyproject registers)."""
    workflow = load_workflow("tests.yml")
    job = workflow["jobs"]["pytest"]
    legs = job["strategy"]["matrix"]["include"]
    assert {leg["os"] for leg in legs} == {"ubuntu-latest", "macos-latest", "windows-latest"}
    linux = [leg for leg in legs if leg["os"] == "ubuntu-latest"]
    assert {leg["python"] for leg in linux} == {"3.11", "3.12"}
    assert {leg["tests"] for leg in linux} == {"all"}
    assert {leg["tests"] for leg in legs if leg not in linux} == {"portable"}
    runs = {step.get("if"): step.get("run", "") for step in job["steps"] if "run" in step}
    assert runs["matrix.tests == 'all'"] == README_TEST_COMMAND
    portable = runs["matrix.tests == 'portable'"]
    assert portable == README_TEST_COMMAND.replace("pytest", 'pytest -m "not linux_only"', 1)
    apt = runs["runner.os == 'Linux'"]
    assert "apt-get install" in apt and {"prometheus", "postgresql"} <= set(apt.split())
    assert "/usr/bin/chromium" in apt
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]
    assert any(m.startswith("linux_only:") for m in markers["ini_options"]["markers"])
    setup = yaml.safe_load((ACTIONS / "setup" / "action.yml").read_text())
    uv_step = next(s for s in setup["runs"]["steps"] if "setup-uv" in s.get("uses", ""))
    assert uv_step["with"]["enable-cache"] is True
    assert "uv sync --locked" in json.dumps(setup)


#: What only a Linux leg has: a test file using one of these must mark those tests linux_only.
LINUX_NEEDS = ("/usr/bin/chromium", "promtool", "initdb", "pg_ctl", "signal.SIG", '"fork"',
               "/proc/", "/usr/bin:/bin")  # fmt: skip


def _linux_tests_unmarked(path: Path) -> list[str]:
    """Test functions of ``path`` that use a LINUX_NEEDS item (directly or through a module-level
    helper, constant or fixture) without the linux_only marker on them or on the module."""
    import ast

    text = path.read_text(encoding="utf-8")
    if "pytestmark = pytest.mark.linux_only" in text:
        return []
    tree = ast.parse(text)
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names[node.name] = ast.get_source_segment(text, node) or ""
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = ast.get_source_segment(text, node) or ""
    needy = {name for name, src in names.items() if any(n in src for n in LINUX_NEEDS)}
    while True:  # whatever uses a needy name needs Linux too
        more = {
            name
            for name, src in names.items()
            if name not in needy and any(re.search(rf"\b{n}\b", src) for n in needy)
        }
        if not more:
            break
        needy |= more
    tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    return [
        f"{path.name}::{node.name}"
        for node in tests
        if node.name in needy
        and not any("linux_only" in ast.unparse(d) for d in node.decorator_list)
    ]


def test_tests_needing_linux_are_marked_linux_only(tmp_path: Path) -> None:
    """The portable legs' guard: no test that uses a Linux-only tool or call is left unmarked."""
    unmarked = [
        u for p in sorted((REPO / "tests").glob("test_*.py")) for u in _linux_tests_unmarked(p)
    ]
    assert unmarked == [], unmarked
    probe = tmp_path / "test_probe.py"  # the check itself finds one
    probe.write_text(
        "import signal\nimport pytest\n\ndef _stop(p):\n    p.send_signal(signal.SIGINT)\n\n"
        "def test_a(): _stop(1)\n\n@pytest.mark.linux_only\ndef test_b(): _stop(1)\n\n"
        "def test_c(): pass\n"
    )
    assert _linux_tests_unmarked(probe) == ["test_probe.py::test_a"]


def test_lint_workflow_runs_every_linter() -> None:
    runs = " ; ".join(step.get("run", "") for step in steps_of(load_workflow("lint.yml")))
    for command in ("ruff check", "ruff format --check", "actionlint", "hadolint",
                    "pre-commit run --all-files"):  # fmt: skip
        assert command in runs, command


def test_docker_workflow_pushes_only_on_tags_through_workload_identity() -> None:
    workflow = load_workflow("docker.yml")
    assert "v*" in workflow["on"]["push"]["tags"]
    steps = steps_of(workflow)
    auth = next(s for s in steps if s.get("uses") == "./.github/actions/gcp-auth")
    assert "refs/tags/v" in auth["if"]
    push = next(s for s in steps if "docker push" in s.get("run", ""))
    assert push["if"] == "steps.gcp.outputs.authenticated == 'true'"
    build = next(s for s in steps if "build-push-action" in s.get("uses", ""))
    assert build["with"].get("push") in (None, False)
    gcp = yaml.safe_load((ACTIONS / "gcp-auth" / "action.yml").read_text())
    auth_step = next(
        s for s in gcp["runs"]["steps"] if "google-github-actions/auth" in s.get("uses", "")
    )
    assert set(auth_step["with"]) == {"workload_identity_provider", "service_account"}


def test_data_change_and_model_registry_triggers() -> None:
    data = load_workflow("data-change.yml")
    for event in ("push", "pull_request"):
        assert {"**.dvc", "dvc.lock"} <= set(data["on"][event]["paths"])
    runs = " ; ".join(step.get("run", "") for step in steps_of(data))
    for command in ("dvc pull", "sentiment train", "sentiment eval", "gh pr comment"):
        assert command in runs, command
    registry = load_workflow("model-registry.yml")
    assert "model" in registry["on"]["workflow_dispatch"]["inputs"]
    assert registry["on"]["repository_dispatch"]["types"] == ["promote-model"]
    steps = steps_of(registry)
    gate = next(s for s in steps if s.get("uses") == "./.github/actions/metrics-gate")
    promote = next(s for s in steps if "production/model" in s.get("run", ""))
    assert f"steps.{gate['id']}.outputs.passed == 'true'" in promote["if"]
    docs = load_workflow("docs.yml")
    assert any("mkdocs build --strict" in s.get("run", "") for s in steps_of(docs))
    assert "deploy-pages" in json.dumps(docs["jobs"]["deploy"])


# --- the composite actions' scripts, run for real ------------------------------------------------


def run_gate(
    tmp_path: Path, metrics: dict, minimum: str
) -> tuple[subprocess.CompletedProcess, Path, Path]:
    metrics_file = tmp_path / "test_metrics.json"
    metrics_file.write_text(json.dumps(metrics))
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    env = {**os.environ, "METRICS_FILE": str(metrics_file), "METRIC": "test_accuracy",
           "MINIMUM": minimum, "TITLE": "Gate", "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_OUTPUT": str(output)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(ACTIONS / "metrics-gate" / "gate.py")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result, summary, output


def test_metrics_gate_passes_and_fails(tmp_path: Path) -> None:
    metrics = {"test_accuracy": 0.84, "test_f1": 0.83, "data_source": "x"}
    ok, summary, output = run_gate(tmp_path, metrics, "0.80")
    assert ok.returncode == 0, ok.stdout
    assert "| test_accuracy | 0.8400 |" in summary.read_text()
    assert "passed=true" in output.read_text()
    low, _, output = run_gate(tmp_path, metrics, "0.90")
    assert low.returncode == 1
    assert "::error::test_accuracy 0.8400 is below the gate 0.9000" in low.stdout
    assert "passed=false" in output.read_text()
    missing, _, _ = run_gate(tmp_path, {"eval_accuracy": 0.9}, "0.5")
    assert missing.returncode == 1 and "no numeric 'test_accuracy'" in missing.stdout


def test_rt_polarity_action_checks_the_digests(tmp_path: Path, rt_dir: Path) -> None:
    sys.path.insert(0, str(ACTIONS / "rt-polarity"))
    try:
        import fetch
    finally:
        sys.path.pop(0)
    dest = tmp_path / "rt"
    dest.mkdir()
    for name in fetch.SHA256:
        shutil.copy2(rt_dir / name, dest / name)
    result = subprocess.run(
        [sys.executable, str(ACTIONS / "rt-polarity" / "fetch.py"), str(dest)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and "already" in result.stdout, result.stderr
    (dest / "rt-polarity.pos").write_bytes(b"tampered\n")
    assert not fetch.digest_ok(dest / "rt-polarity.pos")
    assert fetch.digest_ok(dest / "rt-polarity.neg")


# --- pre-commit ----------------------------------------------------------------------------------


def _copy_tracked(dest: Path) -> None:
    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)


def run_pre_commit(repo: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**tool_env(), "PRE_COMMIT_HOME": str(home), "UV_PROJECT_ENVIRONMENT": sys.prefix,
           "UV_OFFLINE": "1", "SKIP": ""}  # fmt: skip
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [str(BIN / "pre-commit"), "run", "--all-files", "--color", "never"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_pre_commit_is_clean_on_the_tracked_files(tmp_path: Path) -> None:
    """A copy of every tracked file (as in the work tree): no hook may fail or change a file."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_tracked(repo)
    result = run_pre_commit(repo, tmp_path / "home")
    assert result.returncode == 0, result.stdout[-4000:]
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    assert {r["repo"] for r in config["repos"]} == {"local"}, "hooks must not be fetched"


def test_pre_commit_hooks_catch_faults(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    shutil.copy2(REPO / ".pre-commit-config.yaml", repo)
    shutil.copy2(REPO / "pyproject.toml", repo)
    (repo / "notes.txt").write_text("trailing   \nno newline at end")
    (repo / "broken.yaml").write_text("key: [unclosed\n")
    (repo / "broken.toml").write_text("[table\n")
    (repo / "pkg" / "mod.py").write_text("import os, sys\nx=1\n")
    (repo / "big.bin").write_bytes(os.urandom(1_200_000))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    result = run_pre_commit(repo, tmp_path / "home")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    failed = {line.split("...")[0].strip() for line in lines if line.endswith("Failed")}
    expected = {"ruff check", "ruff format", "trim trailing whitespace", "fix end of files",
                "check yaml", "check toml", "check for added large files"}  # fmt: skip
    assert expected <= failed, result.stdout
    assert (repo / "notes.txt").read_text() == "trailing\nno newline at end\n"  # fixed in place


# --- Makefile ------------------------------------------------------------------------------------


def make(*args: str) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_help_is_the_default_and_lists_every_target() -> None:
    listed = {line.split()[0] for line in make().splitlines() if line.strip()}
    assert set(MAKE_TARGETS) <= listed
    assert make() == make("help")


def test_make_targets_run_the_documented_commands() -> None:
    ci_run = (REPO / ".ci" / "run").read_text()
    assert README_TEST_COMMAND in ci_run
    assert make("-n", "test").strip() == README_TEST_COMMAND
    assert make("-n", "train", "ARGS=a=1").strip() == "uv run sentiment train recipes/base.yaml a=1"
    assert make("-n", "sweep").strip() == "uv run sentiment sweep recipes/sweep.yaml"
    assert make("-n", "eval", "MODEL=runs/x").strip() == "uv run sentiment eval runs/x --split test"
    assert make("-n", "serve", "MODEL=runs/x").strip() == (
        "uv run sentiment serve runs/x --backend onnx-int8 --port 8000"
    )
    assert make("-n", "loadtest", "MODEL=runs/x", "BACKEND=torch").strip() == (
        "bash scripts/loadtest.sh runs/x torch"
    )
    assert make("-n", "docs").strip() == "uv run mkdocs build --strict"
    assert make("-n", "data-pull").strip() == "uv run dvc pull"
    assert make("-n", "data-push").strip() == "uv run dvc push"
    docker = make("-n", "docker-train", "GPUS=all", "DATA_DIR=/d").splitlines()
    assert docker[0] == "docker build --target train -t sentiment-hf:train ."
    assert "--gpus all" in docker[1] and '-v "/d:/app/data"' in docker[1]
    assert f'-v "{REPO}/runs:/app/runs"' in docker[1]
    assert docker[1].rstrip().endswith("sentiment-hf:train train recipes/base.yaml")
    serve = make("-n", "docker-serve", "MODEL=runs/x").splitlines()
    assert serve[0] == "docker build --target serve -t sentiment-hf:serve ."
    assert f'-v "{REPO}/runs/x:/models/model:ro"' in serve[1] and '-p "8000:8000"' in serve[1]
    assert "--gpus" not in serve[1]
