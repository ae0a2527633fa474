"""Which ``checkpoint-N`` folder a resumed run continues from.

The Trainer writes a checkpoint's files one after the other and ``trainer_state.json`` last, so a
crash (kill -9, power loss, a full disk) can leave the newest folder half-written. A checkpoint
counts as complete when its weights are there and its ``trainer_state.json`` parses and names
its own step; incomplete ones are skipped, newest first, with a warning.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from sentiment_hf.rundir import WEIGHTS_GLOB

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE_FILE = "trainer_state.json"


def checkpoints(run_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``run_dir``, newest (highest N) first."""
    found = [
        (int(m.group(1)), path)
        for path in run_dir.iterdir()
        if path.is_dir() and (m := CHECKPOINT_PATTERN.match(path.name))
    ]
    return [path for _, path in sorted(found, reverse=True)]


def incomplete_reason(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from, or None when it is complete."""
    if not any(checkpoint.glob(WEIGHTS_GLOB)):
        return "no model weights"
    try:
        state = json.loads((checkpoint / TRAINER_STATE_FILE).read_text())
    except FileNotFoundError:
        return f"no {TRAINER_STATE_FILE}"
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{TRAINER_STATE_FILE} is cut short"
    step = CHECKPOINT_PATTERN.match(checkpoint.name).group(1)
    if str(state.get("global_step")) != step:
        return f"{TRAINER_STATE_FILE} names step {state.get('global_step')}, not {step}"
    return None


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of ``run_dir`` (warning about each newer broken one)."""
    if not run_dir.is_dir():
        return None
    for checkpoint in checkpoints(run_dir):
        reason = incomplete_reason(checkpoint)
        if reason is None:
            return checkpoint
        log.warning(
            "skipping %s: it was half-written by a crash (%s); resuming from an earlier one",
            checkpoint,
            reason,
        )
    return None
