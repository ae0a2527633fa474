"""Dockerfile and .dockerignore, checked without a Docker engine (none runs on these machines).

hadolint lints the real file; the build is emulated: the files the Dockerfile COPYs are laid out
in an empty folder, the builder stage's own ``uv sync`` commands install the lock from there into
a fresh environment (offline, from the uv cache), and the image's ENTRYPOINT + CMD run from it.
GitHub's ``docker`` workflow builds the real image and runs the same entry commands inside it.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import threading
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


class Emulator:
    """Replays a stage's instructions in order on a folder that stands for the image's ``/``.

    COPY/ADD take their sources from the build context (minus .dockerignore) or, with
    ``--from``, from the same emulated root (the venv's scripts hold absolute paths, so a stage
    may only copy a path to itself); WORKDIR and ENV carry over to later instructions; RUN runs
    what can run unprivileged: ``uv sync`` (offline, from the uv cache) and ``mkdir``. The user
    set-up (groupadd, useradd, chown, chmod) needs root and is left out; any other command fails
    the test, so that a new RUN line is emulated before it ships.
    """

    USER_SETUP = ("groupadd", "useradd", "chown", "chmod")
    SYSTEM = ("/usr/", "/bin", "/sbin", "/lib", "/etc", "/tmp/", "/dev/", "/proc/")
    RUN_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "WANDB_MODE",
               "DVC_NO_ANALYTICS", "TOKENIZERS_PARALLELISM")  # fmt: skip

    def __init__(self, root: Path, ignore: list[str]) -> None:
        self.root, self.ignore = root, ignore
        self.workdir, self.env = "/", {"PATH": "/usr/bin:/bin"}
        self.built: set[str | None] = set()

    def at(self, path: str) -> Path:
        """The host path of an image path (relative ones from WORKDIR)."""
        return self.root / posixpath.join(self.workdir, path).lstrip("/")

    def map(self, value: str) -> str:
        """A value with its image paths made host paths (``:``-lists such as PATH part by part);
        the base image's system folders are this machine's."""
        return ":".join(
            str(self.at(p)) if p.startswith("/") and not p.startswith(self.SYSTEM) else p
            for p in value.split(":")
        )

    def host_env(self) -> dict[str, str]:
        """What a container's processes see: the base image's basics, the offline switches the
        suite passes as ``docker run -e``, and the image's ENV with its paths mapped. Nothing
        else of this machine's environment (no venv, no PYTHON* settings) leaks in."""
        env = {"HOME": str(self.at("/home/app")), "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}
        env.update({k: os.environ[k] for k in self.RUN_ENV if k in os.environ})
        return {**env, **{k: self.map(v) for k, v in self.env.items()}}

    def run_stage(self, stage: Stage, skip_env: dict[str, str] | None = None) -> None:
        """Replay ``stage`` (``skip_env`` overrides its ENV)."""
        self.built.add(stage.name)
        for keyword, args in stage.instructions:
            if keyword == "WORKDIR":
                self.workdir = posixpath.join(self.workdir, args)
                self.at(".").mkdir(parents=True, exist_ok=True)
            elif keyword == "ENV":
                for pair in shlex.split(args):
                    key, _, value = pair.partition("=")
                    self.env[key] = re.sub(r"\$(\w+)", lambda m: self.env.get(m[1], ""), value)
                self.env.update(skip_env or {})
            elif keyword in ("COPY", "ADD"):
                self.copy(args)
            elif keyword == "RUN":
                self.run(args)

    def copy(self, args: str) -> None:
        words = shlex.split(args)
        flags = {w.split("=")[0]: w.partition("=")[2] for w in words if w.startswith("--")}
        *sources, dest = [w for w in words if not w.startswith("--")]
        into_dir = dest.endswith("/") or len(sources) > 1
        for source in sources:
            assert "://" not in source, f"ADD {source}: remote sources are not emulated"
            if flags.get("--from") in self.built:
                assert source == dest, f"COPY --from {source} {dest}: the venv cannot move"
                assert self.at(source).exists(), f"COPY --from {source}: not built"
                continue
            if "--from" in flags:  # another image's tool (uv): this machine's
                assert shutil.which(Path(source).name), f"COPY --from {source}: not installed"
                continue
            src = REPO / source
            assert src.exists(), f"COPY {source}: not in the build context"
            target = self.at(dest) / src.name if into_dir and src.is_file() else self.at(dest)
            if src.is_dir():
                for file in sorted(src.rglob("*")):
                    rel = file.relative_to(REPO).as_posix()
                    if file.is_file() and not _dockerignore_excludes(self.ignore, rel):
                        out = target / file.relative_to(src)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(file, out)
            else:
                assert not _dockerignore_excludes(self.ignore, source), f"COPY {source} ignored"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)

    def run(self, args: str) -> None:
        mounts = re.findall(r"--mount=(\S+)", args)
        command = re.sub(r"--mount=\S+\s*", "", args)
        bound = []
        for mount in mounts:  # bind mounts of the context exist only during this RUN
            spec = dict(item.split("=", 1) for item in mount.split(","))
            if spec["type"] == "bind" and not self.at(spec["target"]).exists():
                shutil.copy2(REPO / spec["source"], self.at(spec["target"]))
                bound.append(self.at(spec["target"]))
        try:
            for part in (p.strip() for p in command.split("&&")):
                argv = shlex.split(part)
                if argv[:2] == ["uv", "sync"]:
                    # this machine's uv (COPY --from=uv) with its settings and cache
                    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
                    env.update({k: self.map(v) for k, v in self.env.items() if k != "PATH"})
                    env.update(UV_PYTHON=sys.executable, UV_NO_PROGRESS="1")
                    done = subprocess.run(
                        [*argv, "--offline"], cwd=self.at("."), env=env,
                        capture_output=True, text=True, timeout=300,
                    )  # fmt: skip
                    assert done.returncode == 0, f"RUN {part}: {done.stderr[-2000:]}"
                elif argv[:2] == ["mkdir", "-p"]:
                    for path in argv[2:]:
                        self.at(path).mkdir(parents=True, exist_ok=True)
                else:
                    assert argv[0] in self.USER_SETUP, f"RUN {part!r} is not emulated"
        finally:
            for path in bound:
                path.unlink()


def _dockerignore(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


@pytest.fixture(scope="module")
def image(
    dockerfile: tuple[dict, list[Stage]], tmp_path_factory: pytest.TempPathFactory
) -> Emulator:
    """The runtime stage built by emulation: builder (uv sync of the lock), then runtime."""
    _, stages = dockerfile
    emu = Emulator(tmp_path_factory.mktemp("image"), _dockerignore(REPO / ".dockerignore"))
    # Speed only: bytecode compilation and copying out of the uv cache change no file's content.
    emu.run_stage(
        stage_chain(stages, "builder")[-1], {"UV_COMPILE_BYTECODE": "0", "UV_LINK_MODE": "hardlink"}
    )
    builder_dir = emu.at(".")
    emu.workdir, emu.env = "/", {"PATH": "/usr/bin:/bin"}  # a new stage: FROM python:...
    emu.run_stage(stage_chain(stages, "runtime")[-1])
    shutil.rmtree(builder_dir)  # the builder's source tree is not in the runtime image
    return emu


def _entry(
    chain: list[Stage], emu: Emulator, *args: str, timeout: int = 600
) -> subprocess.CompletedProcess:
    """``docker run IMAGE ARGS``: the ENTRYPOINT with ARGS (image paths mapped), in WORKDIR."""
    argv = [*last_json(chain, "ENTRYPOINT"), *map(emu.map, args)]
    return subprocess.run(
        argv, cwd=emu.at("."), env=emu.host_env(), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_emulated_image_holds_an_installed_package_not_a_source_tree(image: Emulator) -> None:
    where = subprocess.run(
        ["python", "-c", "import sentiment_hf; print(sentiment_hf.__file__)"],
        cwd=image.at("."), env=image.host_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(image.at("/opt/venv")), where.stdout
    assert not image.at("/src").exists()
    assert image.workdir == "/app"
    assert sorted(p.name for p in image.at(".").iterdir()) == ["cloud", "data", "recipes", "runs"]
    assert image.at("recipes/base.yaml").read_bytes() == (REPO / "recipes/base.yaml").read_bytes()
    assert image.host_env()["SENTIMENT_HF_CACHE"] == str(image.at("/home/app/.cache/sentiment_hf"))


def test_emulated_train_and_serve_images_run_their_commands(
    dockerfile: tuple[dict, list[Stage]], image: Emulator, tiny_backbone: Path, rt_dir: Path
) -> None:
    """`docker run` of the train image (its CMD plus overrides) trains on the data mounted at
    /app/data into /app/runs; that run, mounted at /models/model and exported there, is served
    by the serve image's CMD (port 0 for 8000): /ready, /predict and the HEALTHCHECK answer."""
    _, stages = dockerfile
    train_chain, serve_chain = stage_chain(stages, "train"), stage_chain(stages, "serve")
    (image.at("/app/data") / "rt-polarity").symlink_to(rt_dir)  # -v DATA_DIR:/app/data
    overrides = [f"model.backbone={tiny_backbone}", "model.max_length=32",
                 "data.source=data/rt-polarity", "data.max_train_samples=64",
                 "data.max_eval_samples=32", "data.max_test_samples=32",
                 "training.num_train_epochs=1", "training.output_dir=runs/tiny",
                 "training.disable_tqdm=true"]  # fmt: skip
    trained = _entry(train_chain, image, *last_json(train_chain, "CMD"), *overrides)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "test_accuracy" in json.loads(image.at("/app/runs/tiny/metrics.json").read_text())
    shutil.copytree(image.at("/app/runs/tiny"), image.at("/models/model"))  # -v RUN:/models/model
    exported = _entry(serve_chain, image, "export", "/models/model", "--no-parity")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert image.at("/models/model/model.onnx").is_file()

    cmd = last_json(serve_chain, "CMD")
    cmd[cmd.index("--port") + 1] = "0"  # a free port instead of 8000
    argv = [*last_json(serve_chain, "ENTRYPOINT"), *map(image.map, cmd)]
    server = subprocess.Popen(
        argv, cwd=image.at("."), env=image.host_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines, url = [], None
        for line in server.stdout:
            lines.append(line)
            found = re.search(r"Uvicorn running on http://0\.0\.0\.0:(\d+)", line)
            if found:
                url = f"127.0.0.1:{found[1]}"
                break
        assert url, "".join(lines)[-2000:]
        threading.Thread(target=server.stdout.read, daemon=True).start()  # keep the pipe drained
        import httpx

        ready = httpx.get(f"http://{url}/ready", timeout=30)
        assert (
            ready.status_code == 200 and ready.json()["backend"] == cmd[cmd.index("--backend") + 1]
        )
        texts = ["a gorgeous movie", "dull and overlong"]
        answer = httpx.post(f"http://{url}/predict", json={"texts": texts}, timeout=30)
        assert answer.status_code == 200, answer.text
        labels = json.loads(image.at("/models/model/config.json").read_text())["label2id"]
        assert [p["label"] in labels for p in answer.json()["predictions"]] == [True, True]
        (healthcheck,) = serve_chain[-1].all("HEALTHCHECK")
        check = json.loads(healthcheck.split(" CMD ", 1)[1])
        check = [a.replace("127.0.0.1:8000", url) for a in check]
        health = subprocess.run(
            check, cwd=image.at("."), env=image.host_env(), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert health.returncode == 0, health.stderr
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert image.at("/app/runs/requests.db").is_file()  # --request-log /app/runs/requests.db
