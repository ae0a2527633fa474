"""Run the data check on a recipe's data source, or on the splits training loaded, and gate
training on its errors (``data.check``)."""

from __future__ import annotations

import logging
from typing import Any

from sentiment_hf.config.recipe import DataConfig, ModelConfig
from sentiment_hf.data.load import (
    SPLITS,
    SentimentData,
    check_columns,
    infer_label_names,
    read_splits,
)
from sentiment_hf.datacheck.checks import DataReport, check_splits
from sentiment_hf.errors import SentimentError

log = logging.getLogger(__name__)


def _values(ds: Any, name: str) -> list[Any]:
    # one batch (features decoded): iterating a datasets column goes row by row
    return ds.select_columns([name])[:][name]


def load_tokenizer(model: ModelConfig) -> Any:
    """The tokenizer of ``model.backbone`` (offline: the packaged MiniLM for the default)."""
    from sentiment_hf.modeling import build_tokenizer, resolve_backbone

    return build_tokenizer(resolve_backbone(model.backbone, model.revision, model.cache_dir), model)


def check_source(cfg: DataConfig, tokenizer: Any, max_length: int, seed: int = 42) -> DataReport:
    """Check every split of ``cfg.source`` as it is in the files (single files cut as training
    cuts them): empty cells and unknown labels are findings here, not a stop at the first."""
    loaded = read_splits(cfg, seed)
    raw = {split: loaded[split] for split in SPLITS if split in loaded}
    for split, ds in raw.items():
        check_columns(ds, split, cfg)
    names = infer_label_names(raw, cfg)
    splits = {
        split: (_values(ds, cfg.text_column), _values(ds, cfg.label_column))
        for split, ds in raw.items()
    }
    return check_splits(splits, tokenizer, max_length, names, cfg.source)


def check_loaded(data: SentimentData, tokenizer: Any, max_length: int) -> DataReport:
    """Check the validated splits training is about to use."""
    splits = {
        split: (_values(ds, "text"), _values(ds, "label")) for split, ds in data.splits.items()
    }
    return check_splits(splits, tokenizer, max_length, data.label_names, data.source)


def gate(report: DataReport, mode: str) -> None:
    """Log every finding; raise on errors when ``mode`` is ``strict`` (``data.check``)."""
    for finding in report.findings:
        log.warning("data check: %s: %s", finding.severity, finding.message)
    if report.errors and mode == "strict":
        raise SentimentError(
            f"data check found {len(report.errors)} error(s): {report.summary()}. "
            f"Run `sentiment data check {report.source}` for the details, fix the data, or set "
            "data.check=warn to train anyway"
        )
