"""The DVC pipeline and the gs:// remote, end to end, against a loopback GCS emulator.

Nothing is mocked in DVC, dvc-gs or gcsfs: only the bucket is gcp-storage-emulator on 127.0.0.1
instead of Google Cloud Storage (unreachable here). The committed remote (``.dvc/config``) is
pointed at it through ``.dvc/config.local``, as a developer would point it at a test bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import assert_split_metrics_consistent
from servers import gcs_emulator as start_gcs_emulator

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUCKET = "sentiment-hf-dvc"

pytestmark = pytest.mark.linux_only  # Linux tools; run on the Linux CI legs


@pytest.fixture(scope="module")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gcp-storage-emulator on a free loopback port, with the remote's bucket; its URL."""
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with start_gcs_emulator(BUCKET, log=log) as endpoint:
        yield endpoint


def sha256_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class Workspace:
    """A temporary git + DVC repository laid out like this one."""

    def __init__(self, root: Path, endpoint: str) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # gcsfs hangs on the emulator without it
            "WANDB_MODE": "disabled",
        }
        self.endpoint = endpoint

    def run(self, *argv: str, timeout: int = 300) -> str:
        result = subprocess.run(
            argv, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, (
            f"{' '.join(argv)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result.stdout

    def dvc(self, *argv: str, timeout: int = 300) -> str:
        return self.run(str(BIN / "dvc"), *argv, timeout=timeout)


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: str, rt_dir: Path, tiny_backbone: Path
) -> Workspace:
    """dvc.yaml, the prepare script, .dvc/config and a tiny version of recipes/pipeline.yaml."""
    ws = Workspace(tmp_path_factory.mktemp("dvc-repo"), gcs_emulator)
    root = ws.root
    ws.run("git", "init", "-q")
    ws.run("git", "config", "user.email", "ops@test")
    ws.run("git", "config", "user.name", "ops test")
    ws.dvc("init", "-q")
    for name in ("dvc.yaml", ".dvc/config", "scripts/prepare_data.py", "datasets/.gitignore"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    recipe = yaml.safe_load((REPO / "recipes" / "pipeline.yaml").read_text())
    recipe["model"].update(backbone=str(tiny_backbone), max_length=32)
    recipe["data"].update(max_train_samples=128, max_eval_samples=64, max_test_samples=64)
    recipe["training"].update(
        num_train_epochs=1, learning_rate=1e-3, logging_steps=2, disable_tqdm=True
    )
    (root / "recipes").mkdir()
    (root / "recipes" / "pipeline.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (root / "datasets" / "rt-polarity").mkdir()
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        shutil.copy2(rt_dir / name, root / "datasets" / "rt-polarity" / name)
    ws.dvc("remote", "modify", "--local", "storage", "endpointurl", gcs_emulator)
    ws.dvc("remote", "modify", "--local", "storage", "allow_anonymous_login", "true")
    return ws


def test_remote_is_a_gs_bucket_and_local_settings_stay_local(workspace: Workspace) -> None:
    committed = (REPO / ".dvc" / "config").read_text()
    assert f"url = gs://{BUCKET}/" in committed and "remote = storage" in committed
    assert "endpointurl" not in committed and "credential" not in committed
    local = (workspace.root / ".dvc" / "config.local").read_text()
    assert workspace.endpoint in local
    ignored = workspace.run("git", "check-ignore", ".dvc/config.local")
    assert ignored.strip() == ".dvc/config.local"


def test_data_round_trip_through_the_gs_remote(workspace: Workspace) -> None:
    root = workspace.root
    data = root / "datasets" / "rt-polarity"
    before = sha256_tree(data)
    workspace.dvc("add", "datasets/rt-polarity")
    produced = yaml.safe_load((root / "datasets" / "rt-polarity.dvc").read_text())
    committed = yaml.safe_load((REPO / "datasets" / "rt-polarity.dvc").read_text())
    assert produced == committed, "datasets/rt-polarity.dvc no longer matches the shared data"
    workspace.dvc("push")
    shutil.rmtree(root / ".dvc" / "cache")
    shutil.rmtree(data)
    workspace.dvc("pull", "datasets/rt-polarity.dvc")
    assert sha256_tree(data) == before


@pytest.mark.slow
def test_repro_then_push_wipe_pull_restores_the_pipeline(workspace: Workspace) -> None:
    root = workspace.root
    if not (root / ".dvc" / "cache").exists():
        workspace.dvc("add", "datasets/rt-polarity")
    out = workspace.dvc("repro", timeout=600)
    for stage in ("prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in out
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"prepare", "train", "evaluate"}
    assert lock["stages"]["train"]["params"]["recipes/pipeline.yaml"]["training"]["learning_rate"]
    prepared = (root / "datasets" / "prepared").glob("*.jsonl")
    counts = {path.stem: path.read_bytes().count(b"\n") for path in prepared}
    assert counts == {"train": 8530, "validation": 1066, "test": 1066}
    metrics = json.loads(workspace.dvc("metrics", "show", "--json"))
    values = metrics[""]["data"]["reports/pipeline/test_metrics.json"]["data"]
    assert values["test_samples"] == 1066
    assert_split_metrics_consistent(values, "test", 1066)
    assert (root / "reports" / "pipeline" / "test_confusion.png").stat().st_size > 1000
    run = root / "runs" / "pipeline"
    before = sha256_tree(run)
    assert {"model.safetensors", "recipe.yaml", "metrics.json", "manifest.json"} <= set(before)
    workspace.dvc("push")
    shutil.rmtree(root / ".dvc" / "cache")
    shutil.rmtree(run)
    shutil.rmtree(root / "datasets" / "prepared")
    workspace.dvc("pull")
    assert sha256_tree(run) == before
    status = workspace.dvc("status", "--json")
    assert json.loads(status) == {}
    recipe_path = root / "recipes" / "pipeline.yaml"
    recipe = yaml.safe_load(recipe_path.read_text())
    recipe["training"]["learning_rate"] = 3e-4
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    changed = json.loads(workspace.dvc("status", "--json"))
    assert set(changed) == {"train"}, changed  # prepare reads only `data`; evaluate follows train
