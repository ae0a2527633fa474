"""Tokenize a run's splits once, cached by content (``datasets.map``), without padding."""

from __future__ import annotations

import hashlib
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from datasets import DatasetDict
from sentiment_hf.data import arrow as arrowdata
from sentiment_hf.data.load import SentimentData
from sentiment_hf.longtext import LongTextConfig, window_batch


def tokenize_splits(
    data: SentimentData,
    tokenizer: Any,
    max_length: int,
    main_process_first: Any = None,
    cache_dir: str | Path | None = None,
    long_text: LongTextConfig | None = None,
    num_proc: int | None = None,
) -> DatasetDict:
    """Tokenize every split with ``datasets.map`` (batched, cached by content), no padding.

    Padding happens per batch in the collator (dynamic padding). ``main_process_first`` is the
    TrainingArguments context manager, so under torchrun rank 0 builds the cache first. With
    ``long_text.train`` ``all`` (or ``spread``) each long train text gives all its windows (at
    most ``max_windows``; or ``train_windows`` of them) with its label; other splits, and
    ``first``, keep the first window.
    ``num_proc`` is ``data.num_proc`` (None: one process).
    """
    long_text = long_text or LongTextConfig(train="first")

    def encode(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    def encode_windows(batch: dict[str, list]) -> dict[str, list]:
        return window_batch(tokenizer, batch, long_text, max_length)

    key = hashlib.sha256(
        f"{data.fingerprint}|{tokenizer.name_or_path}|{len(tokenizer)}|{max_length}"
        f"|{long_text.cache_key()}".encode()
    ).hexdigest()[:16]
    root = cache_dir or Path(
        os.environ.get("SENTIMENT_HF_CACHE", Path.home() / ".cache" / "sentiment_hf")
    )
    cache = Path(root) / "tokenized" / key
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    with main_process_first or nullcontext():
        for split, ds in data.splits.items():
            windows = split == "train" and long_text.train != "first"
            procs = arrowdata.resolve_num_proc(num_proc)
            out[split] = ds.map(
                encode_windows if windows else encode,
                batched=True,
                remove_columns=["text"],
                cache_file_name=str(cache / f"{split}.arrow"),
                desc=f"tokenize {split}",
                num_proc=procs if procs > 1 else None,
            )
    return DatasetDict(out)
