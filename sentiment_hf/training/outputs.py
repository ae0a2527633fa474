"""What a training writes into its run directory and what it replaces there: weights readable
as the umask allows, the resume / overwrite check, and the files made from older weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import share_as_umask_allows
from sentiment_hf.rundir import CONFIG_FILE, DERIVED_FROM_WEIGHTS, WEIGHTS_GLOB
from sentiment_hf.training.checkpoints import checkpoints, last_complete_checkpoint

log = logging.getLogger(__name__)


def share_weights(folder: Path) -> None:
    """Weights readable as the umask allows, like the folder's other files (safetensors
    writes them 0600: a run trained as root would not serve as the container's user)."""
    share_as_umask_allows(folder.glob(WEIGHTS_GLOB))


def share_checkpoint_weights() -> Any:
    """A Trainer callback applying :func:`share_weights` to each checkpoint as it is saved."""
    from transformers import TrainerCallback

    class ShareWeights(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                share_weights(folder)

    return ShareWeights()


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> str | None:
    """Return the checkpoint to resume from; refuse to clobber a finished or started run."""
    if not run_dir.is_dir():
        if resume:
            log.warning("--resume: %s does not exist yet, starting a new run", run_dir)
        return None
    if resume:
        last = last_complete_checkpoint(run_dir)
        if last is None:
            log.warning("--resume: no complete checkpoint in %s, starting from scratch", run_dir)
        return None if last is None else str(last)
    started = bool(checkpoints(run_dir)) or (run_dir / CONFIG_FILE).exists()
    if started and not overwrite:
        raise SentimentError(
            f"run directory {str(run_dir)!r} already holds a run; pass --resume to continue it, "
            "--overwrite to replace it, or set training.output_dir=NEW_DIR"
        )
    return None


def remove_derived(run_dir: Path) -> None:
    """Delete what export, calibrate and eval made from earlier weights of ``run_dir``
    (:data:`~sentiment_hf.rundir.DERIVED_FROM_WEIGHTS`): after ``train --overwrite`` no ONNX
    file, parity report, policy or eval report of the old model is left to be read."""
    import shutil

    for name in DERIVED_FROM_WEIGHTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            log.info("removed %s: it was made from the replaced weights", path)
            path.unlink()
