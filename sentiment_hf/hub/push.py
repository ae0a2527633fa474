"""Stage a run directory for the Hugging Face Hub, write its model card and upload it.

The staged folder holds exactly what is uploaded: safetensors weights, the tokenizer, the config
with label names, the resolved recipe, the run's metrics and a ``README.md`` model card whose
YAML metadata (license, datasets, base_model, pipeline_tag, model-index) comes from the run's own
``recipe.yaml`` and ``metrics.json``. Pickled files (``training_args.bin``, optimizer state,
checkpoints) are never staged.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_text_atomic
from sentiment_hf.hub.card import RT_DATASET, build_model_card
from sentiment_hf.modeling import hub_offline
from sentiment_hf.rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    POLICY_FILE,
    RECIPE_FILE,
    WEIGHTS_INDEX,
    RunDir,
    open_run,
)

__all__ = ["RT_DATASET", "build_model_card", "push_to_hub", "stage_for_hub"]

log = logging.getLogger(__name__)

DEFAULT_LICENSE = "apache-2.0"
CARD_FILE = "README.md"
#: Run-directory files copied as they are (the tokenizer is re-saved by transformers).
COPIED = (CONFIG_FILE, RECIPE_FILE, METRICS_FILE, POLICY_FILE)


@dataclass
class StagedFolder:
    """A folder ready to upload and the files in it (relative paths)."""

    path: Path
    files: list[str]
    card: str
    sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class PushResult:
    """What :func:`push_to_hub` staged and, unless a dry run, where it went."""

    repo_id: str
    staged: StagedFolder
    uploaded: bool = False
    url: str | None = None
    commit: dict[str, Any] = field(default_factory=dict)


def check_repo_id(repo_id: str) -> str:
    """Raise a clear error unless ``repo_id`` is a valid ``ORG/NAME`` model repository id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise SentimentError(
            f"invalid repo id {repo_id!r}: write it as ORG/NAME (or USER/NAME), e.g. "
            "my-org/minilm-rt-sentiment"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        reason = str(exc).splitlines()[0]
        raise SentimentError(
            f"invalid repo id {repo_id!r}: {reason}; use letters, digits, '-', '_' and '.' "
            "in ORG/NAME"
        ) from None
    return repo_id


def _staged_weights(run: RunDir) -> list[Path]:
    index = run.file(WEIGHTS_INDEX)
    return run.weights + ([index] if index.is_file() else [])


def stage_for_hub(
    model_dir: str | Path,
    repo_id: str,
    stage_dir: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
) -> StagedFolder:
    """Write exactly the files to upload into ``stage_dir`` (a new temp folder when None)."""
    from transformers import AutoTokenizer

    run = open_run(model_dir)
    path = run.path
    check_repo_id(repo_id)
    card = build_model_card(run, repo_id, license=license)
    if stage_dir is None:
        out = Path(tempfile.mkdtemp(prefix="sentiment-hub-"))
    else:
        out = Path(stage_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise SentimentError(
                f"--stage-dir {str(out)!r} exists and is not empty; pass a new or empty folder"
            )
        if out.resolve() == path.resolve():
            raise SentimentError("--stage-dir must differ from MODEL_DIR")
        out.mkdir(parents=True, exist_ok=True)
    for src in _staged_weights(run):
        shutil.copy2(src, out / src.name)
    for name in COPIED:
        if (path / name).is_file():
            shutil.copy2(path / name, out / name)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)
    write_text_atomic(out / CARD_FILE, card)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    sizes = {name: (out / name).stat().st_size for name in files}
    return StagedFolder(out, files, card, sizes)


def _token() -> str:
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise SentimentError(
            "no Hugging Face token: set HF_TOKEN or log in once with `hf auth login`"
        )
    return token


def push_to_hub(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    stage_dir: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
    commit_message: str | None = None,
) -> PushResult:
    """Stage ``model_dir`` with its model card and upload it to ``repo_id`` on the Hub.

    ``dry_run`` stages and returns without touching the network. Offline (``HF_HUB_OFFLINE``)
    without ``dry_run`` is an error. The token comes from ``HF_TOKEN`` or a saved login and is
    never printed.
    """
    open_run(model_dir)
    check_repo_id(repo_id)
    if not dry_run and hub_offline():
        raise SentimentError(
            "HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it to push, or pass "
            "--dry-run to only stage the folder"
        )
    token = None if dry_run else _token()
    staged = stage_for_hub(model_dir, repo_id, stage_dir=stage_dir, license=license)
    result = PushResult(repo_id=repo_id, staged=staged)
    if dry_run:
        return result
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=staged.path,
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"Upload {Path(model_dir).name} with sentiment_hf",
        )
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        hint = {
            401: "the token is invalid or expired; log in again with `hf auth login`",
            403: f"the token may not write to {repo_id}; use a write token for that namespace",
        }.get(status, "check the repo id, your token's rights and the network")
        raise SentimentError(
            f"upload to {repo_id} failed ({status or 'HTTP error'}): {hint}"
        ) from None
    except Exception as exc:  # transport errors: the HTTP client's own types, OSError
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise SentimentError(
            f"upload to {repo_id} failed: cannot reach the Hugging Face Hub "
            f"({type(exc).__name__}: {reason}); check the network and retry"
        ) from None
    result.uploaded = True
    result.url = str(url)
    result.commit = {
        "oid": getattr(commit, "oid", None),
        "url": getattr(commit, "commit_url", None),
    }
    if stage_dir is None:
        shutil.rmtree(staged.path, ignore_errors=True)
    return result
