"""Run manifest: what produced a run directory (code, data, software, hardware, time)."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sentiment_hf.hardware import device_info

PACKAGES = (
    "sentiment-hf",
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "tokenizers",
    "numpy",
)


def git_sha(cwd: str | Path | None = None) -> str | None:
    """The current commit of the working tree (with ``-dirty`` when modified), or None."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide a run's numbers."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_manifest(
    data_fingerprint: str, started: float, finished: float, world_size: int, **extra: Any
) -> dict[str, Any]:
    """Everything needed to say how a run was made."""
    return {
        "git_sha": git_sha(),
        "data_fingerprint": data_fingerprint,
        "packages": package_versions(),
        "device": device_info(),
        "world_size": world_size,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished_at": datetime.fromtimestamp(finished, UTC).isoformat(),
        "wall_time_s": round(finished - started, 3),
        "command": sys.argv,
        **extra,
    }
