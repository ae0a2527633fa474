"""Inputs longer than ``max_length`` tokens: truncation or windows, one rule for all.

A tokenized input is ``[front specials] content [back specials]`` (``[CLS] … [SEP]`` for BERT);
a window holds ``W = max_length - specials`` content tokens and gets the text's own special
tokens. In ``window`` mode a longer text is cut into windows of whole sentences packed up to
``W`` tokens (``cut: sentences``, no overlap; :mod:`sentiment_hf.sentences`: a model trained on
sentences reads sentences, not halves of them), or into windows starting at ``0, stride,
2·stride, …`` plus one ending at the last token (``cut: tokens``: neighbours overlap by
``W - stride``). Every token is read. A text's window logits are aggregated
(:func:`aggregate_logits`) *before* the run's calibration, so every backend and consumer
(``Predictor``, eval, predict, the server, training with ``train: all``) applies the same rule.
``truncate`` mode reads the first window only.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.sentences import markup_tokens, sentence_starts, sentence_windows

#: When ``stride`` is null: this share of a window's content tokens between window starts.
DEFAULT_STRIDE_SHARE = 0.75
MODES = ("truncate", "window")
AGGREGATES = ("mean", "max")


@dataclass
class LongTextConfig:
    """How inputs longer than ``max_length`` tokens are read (docs/long_text.md).

    ``truncate`` reads the first ``max_length`` tokens; ``window`` reads every token in windows
    of up to ``max_length`` (special tokens re-added to each): whole ``sentences`` packed (``cut``;
    needs a fast tokenizer) or ``tokens``, ``stride`` content tokens between window starts (null:
    three quarters of a window), and combines each text's window logits by ``aggregate``
    (``mean``, or ``max``: the per-label maximum) before calibration. A text needing more than
    ``max_windows`` windows is refused where one request must not hold the server (413); eval,
    calibration and ``predict --file`` read its first ``max_windows`` windows and count it as
    capped. ``train``: each long training text gives its ``first`` window, ``all`` of them, or
    ``spread``: at most ``train_windows`` of them, evenly spaced from the first to the last.
    """

    mode: typing.Literal["truncate", "window"] = "window"
    cut: typing.Literal["tokens", "sentences"] = "sentences"
    stride: int | None = None
    aggregate: typing.Literal["mean", "max"] = "mean"
    max_windows: int = 64
    train: typing.Literal["first", "all", "spread"] = "first"
    train_windows: int = 3

    def __post_init__(self) -> None:
        for key in ("stride", "max_windows", "train_windows"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise SentimentError(
                    f"model.long_text.{key}: must be a whole number >= 1, got {value!r}"
                )

    def cache_key(self) -> str:
        """What of these settings changes tokenized training data (for the tokenize cache)."""
        if self.train == "first":
            return "first"
        kept = f"spread{self.train_windows}" if self.train == "spread" else "all"
        cut = f"stride{self.stride}" if self.cut == "tokens" else "sentences"
        return f"{kept}-{cut}-cap{self.max_windows}"


def check_long_text(cfg: LongTextConfig, max_length: int) -> None:
    """Raise :class:`SentimentError` if ``cfg`` cannot work with ``max_length`` tokens."""
    if cfg.stride is not None and cfg.stride >= max_length:
        raise SentimentError(
            f"model.long_text.stride: {cfg.stride} tokens is not below model.max_length "
            f"({max_length}); windows would skip tokens, so lower the stride"
        )


class WindowCapExceeded(SentimentError):
    """A text needs more windows than ``model.long_text.max_windows`` (the server: HTTP 413)."""

    def __init__(self, index: int, windows: int, cap: int, tokens: int) -> None:
        self.index, self.windows, self.cap, self.tokens = index, windows, cap, tokens
        super().__init__(
            f"input {index} is {tokens} tokens long and needs {windows} windows; the cap is "
            f"{cap} windows per text (model.long_text.max_windows): send a shorter text or "
            "raise the cap"
        )


@dataclass
class LongTextCounts:
    """How many inputs were longer than ``max_length``, and how many model rows they became."""

    inputs: int = 0
    truncated: int = 0
    windowed: int = 0
    windows: int = 0
    #: Inputs needing more than ``max_windows`` windows, read only up to their first ones.
    capped: int = 0

    def add(self, other: LongTextCounts) -> None:
        """Add ``other``'s counts to these."""
        for name in ("inputs", "truncated", "windowed", "windows", "capped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_metrics(self, split: str) -> dict[str, int]:
        """``{split}_inputs_truncated`` / ``_inputs_windowed`` / ``_inputs_capped`` /
        ``_windows`` for a metrics file."""
        return {
            f"{split}_inputs_truncated": self.truncated,
            f"{split}_inputs_windowed": self.windowed,
            f"{split}_inputs_capped": self.capped,
            f"{split}_windows": self.windows,
        }


def describe_capped(cfg: LongTextConfig, capped: int) -> str:
    """``3 text(s) read only up to their first 64 windows (model.long_text.max_windows)``."""
    return (
        f"{capped:,} text(s) read only up to their first {cfg.max_windows} windows "
        "(model.long_text.max_windows)"
    )


def describe_long_text(cfg: LongTextConfig, counts: LongTextCounts, rule: bool = False) -> str:
    """One line for a report: the policy and what it did, e.g. ``window (sentences), mean: 1,960
    of 2,000 inputs windowed (9,812 windows)``; ``rule``: a fitted document rule decides."""
    if cfg.mode == "truncate":
        return f"truncate: {counts.truncated:,} of {counts.inputs:,} inputs truncated"
    how = "document rule" if rule else cfg.aggregate
    line = (
        f"window ({cfg.cut}), {how}: {counts.windowed:,} of {counts.inputs:,} inputs windowed "
        f"({counts.windows:,} windows)"
    )
    if counts.capped:
        line += f", {describe_capped(cfg, counts.capped)}"
    return line


def truncate_tokens(values: list[Any], max_length: int) -> list[Any]:
    """The first ``max_length - 1`` items and the last one (the [SEP]-like end token stays)."""
    return values[: max_length - 1] + values[-1:] if len(values) > max_length else values


def _specials(mask: list[int]) -> tuple[int, int]:
    """Leading and trailing special tokens of one encoded input."""
    front = next((i for i, m in enumerate(mask) if not m), len(mask))
    back = next((i for i, m in enumerate(reversed(mask)) if not m), 0)
    return front, back if front < len(mask) else 0


def _check_room(content: int) -> None:
    """A window must hold at least one content token."""
    if content < 1:
        raise SentimentError(
            f"model.max_length leaves no room for text between the special tokens ({content}); "
            "raise model.max_length"
        )


def window_stride(cfg: LongTextConfig, content: int) -> int:
    """Content tokens between window starts for windows of ``content`` content tokens."""
    _check_room(content)
    stride = cfg.stride or max(1, math.floor(content * DEFAULT_STRIDE_SHARE))
    if stride > content:
        raise SentimentError(
            f"model.long_text.stride: {stride} tokens is more than a window's {content} text "
            "tokens (max_length minus the special tokens); windows would skip tokens, so lower it"
        )
    return stride


def window_starts(length: int, content: int, stride: int) -> list[int]:
    """Start offsets of windows of ``content`` tokens covering ``length`` tokens."""
    if length <= content:
        return [0]
    return [*range(0, length - content, stride), length - content]


def count_windows(length: int, content: int, stride: int) -> int:
    """``len(window_starts(length, content, stride))`` without building the list."""
    return 1 if length <= content else math.ceil((length - content) / stride) + 1


def split_row(
    row: dict[str, list[int]],
    special_mask: list[int],
    cfg: LongTextConfig,
    max_length: int,
    index: int = 0,
    strict: bool = True,
    sentences: list[int] | None = None,
) -> list[dict[str, list[int]]]:
    """The model rows of one encoded input: itself when it fits, else its windows (or its first
    window in ``truncate`` mode). Past ``cfg.max_windows`` windows, raises
    :class:`WindowCapExceeded` (``strict``) or keeps the first ``max_windows``. ``sentences``
    (:func:`sentence_starts`) is needed for ``cut: sentences``."""
    total = len(row["input_ids"])
    if total <= max_length:
        return [row]
    if cfg.mode == "truncate":
        return [{k: truncate_tokens(v, max_length) for k, v in row.items()}]
    front, back = _specials(special_mask)
    content = max_length - front - back
    length = total - front - back
    if cfg.cut == "sentences":
        if sentences is None:
            raise ValueError("cut: sentences needs each input's sentence starts")
        _check_room(content)
        spans = sentence_windows(length, content, sentences)
    else:
        stride = window_stride(cfg, content)
        spans = [(s, s + content) for s in window_starts(length, content, stride)]
    if len(spans) > cfg.max_windows and strict:
        raise WindowCapExceeded(index, len(spans), cfg.max_windows, total)
    end = total - back
    return [
        {k: v[:front] + v[front + s : front + e] + v[end:] for k, v in row.items()}
        for s, e in spans[: cfg.max_windows]
    ]


def check_tokenizer(cfg: LongTextConfig, tokenizer: Any) -> None:
    """Raise :class:`SentimentError` if ``tokenizer`` cannot cut ``cfg``'s windows (sentence
    windows need a fast tokenizer's character offsets)."""
    if cfg.mode == "window" and cfg.cut == "sentences" and not getattr(tokenizer, "is_fast", 0):
        raise SentimentError(
            "model.long_text.cut: sentences needs a fast tokenizer (one with a tokenizer.json); "
            "set model.long_text.cut: tokens"
        )


def encode(
    tokenizer: Any, texts: list[str], cfg: LongTextConfig, max_length: int
) -> tuple[dict[str, list], list[list[int]] | None, list[list[int]] | None]:
    """Tokenize ``texts`` whole for :func:`split_rows`: the encoding (model inputs only), the
    special-token masks (``window`` mode) and each text's :func:`sentence_starts`
    (``cut: sentences``; empty for a text that fits in ``max_length`` tokens). With
    ``cut: sentences`` a text longer than ``max_length`` tokens loses the tokens of its
    line-break tags (:data:`~sentiment_hf.sentences.MARKUP`), which end sentences instead."""
    window = cfg.mode == "window"
    sentences = window and cfg.cut == "sentences"
    check_tokenizer(cfg, tokenizer)
    enc = dict(
        tokenizer(
            texts,
            truncation=False,
            add_special_tokens=True,
            return_special_tokens_mask=window,
            return_offsets_mapping=sentences,
        )
    )
    masks = enc.pop("special_tokens_mask", None)
    offsets = enc.pop("offset_mapping", None)
    if not sentences:
        return enc, masks, None
    starts: list[list[int]] = []
    for i, text in enumerate(texts):
        if len(offsets[i]) <= max_length:
            starts.append([])
            continue
        drop = set(markup_tokens(text, offsets[i]))
        if drop:
            for values in (*(enc[k] for k in enc), masks, offsets):
                values[i] = [v for j, v in enumerate(values[i]) if j not in drop]
        starts.append(sentence_starts(text, offsets[i], *_specials(masks[i])))
    return enc, masks, starts


def split_rows(
    rows: list[dict[str, list[int]]],
    special_masks: list[list[int]] | None,
    cfg: LongTextConfig,
    max_length: int,
    counts: LongTextCounts | None = None,
    strict: bool = True,
    sentences: list[list[int]] | None = None,
) -> tuple[list[dict[str, list[int]]], np.ndarray]:
    """Every input's model rows, and the input index each row belongs to.

    ``special_masks`` (the tokenizer's ``special_tokens_mask``) is needed in ``window`` mode,
    ``sentences`` (each input's :func:`sentence_starts`) with ``cut: sentences``: both from
    :func:`encode`. ``counts``, when given, is incremented with what happened to these inputs;
    ``strict``: see :func:`split_row`.
    """
    out: list[dict[str, list[int]]] = []
    owner: list[int] = []
    for i, row in enumerate(rows):
        mask = special_masks[i] if special_masks is not None else []
        if cfg.mode == "window" and special_masks is None:
            raise ValueError("window mode needs the tokenizer's special_tokens_mask")
        starts = sentences[i] if sentences is not None else None
        capped = False
        try:
            pieces = split_row(row, mask, cfg, max_length, index=i, sentences=starts)
        except WindowCapExceeded:
            if strict:
                raise
            pieces = split_row(row, mask, cfg, max_length, i, strict=False, sentences=starts)
            capped = True
        if counts is not None:
            long = len(row["input_ids"]) > max_length
            counts.inputs += 1
            counts.windows += len(pieces)
            counts.truncated += int(long and cfg.mode == "truncate")
            counts.windowed += int(long and cfg.mode == "window")
            counts.capped += int(capped)
        out += pieces
        owner += [i] * len(pieces)
    return out, np.asarray(owner, dtype=np.int64)


def aggregate_logits(
    logits: np.ndarray, owner: np.ndarray, n_inputs: int, how: str = "mean"
) -> np.ndarray:
    """Per-input logits from per-row ``logits``: the ``mean`` or per-label ``max`` of its rows."""
    if how not in AGGREGATES:
        raise SentimentError(f"model.long_text.aggregate: unknown {how!r}; use mean or max")
    out = np.zeros((n_inputs, logits.shape[1]), dtype=np.float64)
    if how == "mean":
        np.add.at(out, owner, logits)
        out /= np.bincount(owner, minlength=n_inputs)[:, None]
    else:
        out.fill(-np.inf)
        np.maximum.at(out, owner, logits)
    return out.astype(np.float32)


#: Per label, the statistics of a text's window logits a :class:`DocumentRule` reads (then one
#: more feature: the log of the number of windows).
DOCUMENT_STATS = ("mean", "max", "min", "first", "last")


@dataclass
class DocumentRule:
    """A document decision fitted on labelled long texts (``sentiment document-rule``): a
    logistic regression over :func:`document_features` of a text's window logits, applied to
    every text the run reads in two or more windows (shorter texts keep the sentence model's
    answer). Its logits come out multiplied by ``temperature``, the run's, so that the policy's
    calibration (a division by it) leaves the regression's own probabilities."""

    center: list[float]
    scale: list[float]
    coef: list[list[float]]  # (labels, features); one row for two labels
    intercept: list[float]
    temperature: float = 1.0
    fitted_on: dict[str, Any] | None = None  # what it was fitted on, for the card and docs
    cut: str = "tokens"  # the windows it was fitted on (model.long_text.cut); older files: tokens

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Document logits, shape (texts, labels), from :func:`document_features`."""
        x = (features - np.asarray(self.center)) / np.asarray(self.scale)
        z = x @ np.asarray(self.coef).T + np.asarray(self.intercept)
        if z.shape[1] == 1:  # binary: the regression's margin is the second label's logit
            z = np.concatenate([np.zeros_like(z), z], axis=1)
        return (z * self.temperature).astype(np.float32)


def document_features(logits: np.ndarray, owner: np.ndarray, n_inputs: int) -> np.ndarray:
    """Per input: :data:`DOCUMENT_STATS` of its rows' logits per label, and log(rows)."""
    labels = logits.shape[1]
    out = np.zeros((n_inputs, labels * len(DOCUMENT_STATS) + 1), dtype=np.float64)
    order = np.argsort(owner, kind="stable")  # rows of one input stay in reading order
    bounds = np.searchsorted(owner[order], np.arange(n_inputs + 1))
    for i in range(n_inputs):
        rows = logits[order[bounds[i] : bounds[i + 1]]]
        stats = (rows.mean(0), rows.max(0), rows.min(0), rows[0], rows[-1])
        out[i, :-1] = np.concatenate(stats)
        out[i, -1] = np.log(len(rows))
    return out


def window_batch(
    tokenizer: Any, batch: dict[str, list], cfg: LongTextConfig, max_length: int
) -> dict[str, list]:
    """A ``datasets.map`` batch of ``text``/``label`` as model rows: every window of each text
    (at most ``cfg.max_windows``, never an error) with the text's label (``train: all``), or
    ``cfg.train_windows`` of them evenly spaced, the first and the last among them
    (``train: spread``)."""
    window = replace(cfg, mode="window")
    enc, masks, starts = encode(tokenizer, batch["text"], window, max_length)
    keys = list(enc)
    rows = [{k: enc[k][i] for k in keys} for i in range(len(batch["text"]))]
    pieces, owner = split_rows(rows, masks, window, max_length, strict=False, sentences=starts)
    if cfg.train == "spread":
        kept = []
        for i in range(len(rows)):
            mine = np.flatnonzero(owner == i)
            picks = np.linspace(0, len(mine) - 1, min(len(mine), cfg.train_windows))
            kept += mine[np.unique(picks.round().astype(int))].tolist()
        pieces, owner = [pieces[j] for j in kept], owner[kept]
    out: dict[str, list] = {k: [p[k] for p in pieces] for k in keys}
    out["label"] = [batch["label"][i] for i in owner]
    return out
