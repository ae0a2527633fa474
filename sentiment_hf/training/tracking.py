"""Experiment tracking set-up: W&B online with a key, offline without one, never a prompt."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

from sentiment_hf.config.recipe import TrackingConfig

log = logging.getLogger(__name__)


def wandb_key_configured() -> bool:
    """True when an API key is in the environment or a saved ``wandb login`` (never read out)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def configure_tracking(cfg: TrackingConfig, run_name: str) -> list[str]:
    """Set the W&B environment for the Trainer's callback and return ``report_to``."""
    if not cfg.wandb:
        return []
    os.environ.setdefault("WANDB_PROJECT", cfg.project)
    if cfg.entity:
        os.environ.setdefault("WANDB_ENTITY", cfg.entity)
    if cfg.group:
        os.environ.setdefault("WANDB_RUN_GROUP", cfg.group)
    if cfg.tags:
        os.environ.setdefault("WANDB_TAGS", ",".join(cfg.tags))
    os.environ.setdefault("WANDB_NAME", run_name)
    os.environ.setdefault("WANDB_SILENT", "true")
    if not os.environ.get("WANDB_MODE") and not wandb_key_configured():
        os.environ["WANDB_MODE"] = "offline"
        log.warning(
            "W&B: no API key configured, logging offline to ./wandb (sync later with `wandb sync`)"
        )
    return ["wandb"]
