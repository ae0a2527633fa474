"""Batched prediction over a trained model directory (torch backend; ONNX plugs in as a backend)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.hardware import torch_threads
from sentiment_hf.longtext import (
    LongTextConfig,
    LongTextCounts,
    aggregate_logits,
    check_long_text,
    check_tokenizer,
    document_features,
    encode,
    split_rows,
)
from sentiment_hf.rundir import RunDir, open_run
from sentiment_hf.tasks.policy import ABSTAIN_LABEL

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100_000


@dataclass
class Prediction:
    """One input's answer, the probability of the chosen label and that of every label.

    ``label`` is :data:`~sentiment_hf.tasks.policy.ABSTAIN_LABEL` when the run's policy abstains
    (``abstained``; ``score`` is then the probability of the label it would have chosen).
    ``labels`` lists every label given to the text: ``[label]`` (``[]`` when abstaining) for a
    single-label run; for a multi-label run each label at or above its threshold, most probable
    first (possibly none), ``label`` the first of them (``""`` when none) and ``score`` the
    highest probability of any label.
    """

    text: str
    label: str
    score: float
    probabilities: dict[str, float]
    abstained: bool = False
    labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "label": self.label,
            "labels": self.labels,
            "score": self.score,
            "probabilities": self.probabilities,
            "abstained": self.abstained,
        }


class TorchBackend:
    """Logits from the PyTorch model."""

    name = "torch"

    def __init__(
        self,
        model_dir: Path | RunDir,
        device: str | None = None,
        intra_op_threads: int | None = None,
        model: Any = None,
    ) -> None:
        import torch

        from sentiment_hf.modeling import load_trained

        model_dir = model_dir.path if isinstance(model_dir, RunDir) else model_dir
        self.intra_op_threads = intra_op_threads  # applied per call, then put back
        self.torch = torch
        if model is not None:  # the model the caller holds (training), on its device
            self.device = device or str(next(model.parameters()).device)
        else:
            self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = (model if model is not None else load_trained(model_dir)).to(self.device)
        self.model.eval()
        self.input_names = ["input_ids", "attention_mask", "token_type_ids"]

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        inputs = {k: self.torch.from_numpy(v).to(self.device) for k, v in batch.items()}
        with torch_threads(self.intra_op_threads), self.torch.inference_mode():
            return self.model(**inputs).logits.float().cpu().numpy()


def _onnx_backend(
    model_dir: Path | RunDir,
    device: str | None = None,
    intra_op_threads: int | None = None,
    quantized: bool = False,
) -> Any:
    from sentiment_hf.inference.onnx import OnnxBackend  # onnxruntime only when asked for

    return OnnxBackend(
        model_dir, device=device, quantized=quantized, intra_op_threads=intra_op_threads
    )


#: Backend name → factory(model_dir, device, intra_op_threads). "onnx" / "onnx-int8" need
#: `sentiment export` first.
BACKENDS: dict[str, Callable[..., Any]] = {
    "torch": TorchBackend,
    "onnx": _onnx_backend,
    "onnx-int8": partial(_onnx_backend, quantized=True),
}


class Predictor:
    """Predict labels for texts with a trained model directory.

    Inputs are tokenized once, cut by the run's long-text policy (``long_text`` overrides it:
    :mod:`sentiment_hf.longtext`), sorted by length and batched so each batch pads little;
    results come back in the input order. ``intra_op_threads`` sets the threads inside one model
    call (None: the backend's default; torch sets it around each call and puts the process's
    count back, so nothing leaks into the caller's process). ``progress`` names a progress bar
    over the model's batches, shown on stderr when it is a terminal (eval, calibrate, export).
    ``model``: a torch model already in memory (training's) instead of the run's weights.
    """

    def __init__(
        self,
        model_dir: str | Path | RunDir,
        backend: str = "torch",
        batch_size: int = 32,
        max_length: int | None = None,
        device: str | None = None,
        intra_op_threads: int | None = None,
        long_text: LongTextConfig | None = None,
        progress: str | None = None,
        model: Any = None,
    ) -> None:
        from transformers import AutoTokenizer

        self.run = open_run(model_dir)
        self.model_dir = self.run.path
        if backend not in BACKENDS:
            raise SentimentError(
                f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if batch_size < 1:
            raise SentimentError(f"batch size must be >= 1, got {batch_size}")
        self.labels = self.run.labels
        self.policy = self.run.policy
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.max_length = max_length or self.run.max_length
        self.long_text = long_text or self.run.long_text
        check_long_text(self.long_text, self.max_length)
        check_tokenizer(self.long_text, self.tokenizer)
        self.batch_size = batch_size
        if model is not None and backend != "torch":
            raise SentimentError("a model in memory runs on the torch backend only")
        opts = {"model": model} if model is not None else {}
        self.backend = BACKENDS[backend](
            self.run, device=device, intra_op_threads=intra_op_threads, **opts
        )
        self._warned_truncation = False
        self.progress = progress

    def _encode(
        self, texts: list[str], long_text: LongTextConfig, counts: LongTextCounts, strict: bool
    ) -> tuple[list[dict[str, list[int]]], np.ndarray]:
        enc, masks, starts = encode(self.tokenizer, texts, long_text, self.max_length)
        keys = [k for k in enc if k in self.backend.input_names]
        rows = [{k: enc[k][i] for k in keys} for i in range(len(texts))]
        seen = LongTextCounts()
        rows, owner = split_rows(
            rows, masks, long_text, self.max_length, seen, strict=strict, sentences=starts
        )
        if seen.truncated and not self._warned_truncation:
            log.warning(
                "%d input(s) longer than max_length=%d tokens were truncated",
                seen.truncated,
                self.max_length,
            )
            self._warned_truncation = True
        counts.add(seen)
        return rows, owner

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities calibrated by the run's policy, shape (len(texts), num_labels)."""
        return self.policy.probabilities(self.predict_logits(texts))

    def predict_logits(
        self,
        texts: Sequence[str],
        counts: LongTextCounts | None = None,
        long_text: LongTextConfig | None = None,
        strict: bool = True,
    ) -> np.ndarray:
        """Raw logits, shape (len(texts), num_labels), in input order: a long text's window
        logits aggregated by the long-text policy (``long_text`` replaces it for this call), or,
        for a text read in several windows, by the run's fitted document rule when it has one
        (:attr:`~sentiment_hf.rundir.RunDir.document_rule`, fitted on the run's own windows).
        ``counts`` is incremented with how many inputs were truncated, windowed or capped.
        ``strict`` (one request, the server's rule) raises
        :class:`~sentiment_hf.longtext.WindowCapExceeded` past ``long_text.max_windows`` and
        refuses a text over :data:`MAX_TEXT_CHARS`; otherwise (a data set: eval, calibration,
        files) such a text is read up to its first ``max_windows`` windows and counted as
        capped."""
        long_text = long_text or self.long_text
        logits, owner = self.window_logits(texts, counts, long_text, strict)
        if len(logits) == len(texts):  # one row each: nothing to combine
            return logits
        out = aggregate_logits(logits, owner, len(texts), long_text.aggregate)
        rule = self.run.document_rule
        if rule is not None and long_text == self.run.long_text:  # fitted on these windows
            several = np.bincount(owner, minlength=len(texts)) > 1
            out[several] = rule.logits(document_features(logits, owner, len(texts))[several])
        return out

    def window_logits(
        self,
        texts: Sequence[str],
        counts: LongTextCounts | None = None,
        long_text: LongTextConfig | None = None,
        strict: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The raw logits of every window the long-text policy reads, shape (windows,
        num_labels), and the index of each window's text (a text's windows in reading order),
        before any aggregation: what :meth:`predict_logits` combines, for a rule of your own.
        Arguments as in :meth:`predict_logits`."""
        texts = list(texts)
        if not texts:
            raise SentimentError("no input texts; give at least one text")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise SentimentError(f"input {i} is {type(text).__name__}, not a string")
            if strict and len(text) > MAX_TEXT_CHARS:
                raise SentimentError(
                    f"input {i} has {len(text)} characters; the cap is {MAX_TEXT_CHARS}"
                )
        long_text = long_text or self.long_text
        counts = counts if counts is not None else LongTextCounts()
        rows, owner = self._encode(texts, long_text, counts, strict)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
        logits = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        pad_id = self.tokenizer.pad_token_id or 0
        starts = range(0, len(order), self.batch_size)
        if self.progress:
            from tqdm.auto import tqdm

            starts = tqdm(
                starts,
                desc=self.progress,
                unit=" batches",
                file=sys.stderr,
                leave=False,
                disable=None,  # None: only on a terminal
            )
        for start in starts:
            idx = order[start : start + self.batch_size]
            width = max(len(rows[i]["input_ids"]) for i in idx)
            batch = {}
            for key in rows[idx[0]]:
                fill = pad_id if key == "input_ids" else 0
                arr = np.full((len(idx), width), fill, dtype=np.int64)
                for j, i in enumerate(idx):
                    arr[j, : len(rows[i][key])] = rows[i][key]
                batch[key] = arr
            logits[idx] = self.backend(batch)
        return logits, owner

    def predict(
        self, texts: Sequence[str], counts: LongTextCounts | None = None, strict: bool = True
    ) -> list[Prediction]:
        """Answer, score and per-label probabilities for each text, in input order
        (``counts`` and ``strict`` as in :meth:`predict_logits`)."""
        logits = self.predict_logits(texts, counts, strict=strict)
        return self.decide(texts, self.policy.probabilities(logits))

    def decide(self, texts: Sequence[str], probs: np.ndarray) -> list[Prediction]:
        """The run's decision policy applied to calibrated ``probs`` of ``texts``: the labels it
        gives (most probable first), ``label`` the first of them, or
        :data:`~sentiment_hf.tasks.policy.ABSTAIN_LABEL` where it abstains."""
        decided = self.policy.decisions(probs)
        out = []
        for i, (text, row) in enumerate(zip(texts, probs, strict=True)):
            names = [self.labels[j] for j in decided.given[i]]
            skip = bool(decided.abstained[i])
            out.append(
                Prediction(
                    text=text,
                    label=ABSTAIN_LABEL if skip else (names[0] if names else ""),
                    score=float(row[decided.best[i]]),
                    probabilities={
                        name: float(p) for name, p in zip(self.labels, row, strict=True)
                    },
                    abstained=skip,
                    labels=names,
                )
            )
        return out
