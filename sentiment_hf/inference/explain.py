"""Why the model answered as it did: each word's contribution to the predicted label's score.

Integrated Gradients (captum) over the input word embeddings::

    attribution(token) = sum over dims of (x - x') * mean over the path of d p(label) / d x

where ``p(label)`` is the calibrated probability of the predicted label (the run's
:class:`~sentiment_hf.tasks.policy.SingleLabelPolicy` temperature) and ``x'`` the embeddings of the
baseline: ``"special"`` keeps [CLS] and [SEP] and puts [PAD] everywhere else, ``"pad"`` is [PAD]
at every position. Token attributions are summed into the whitespace-separated words of the text
(fast-tokenizer offsets), so the words' attributions add up to ``score - baseline_score`` up to
the convergence ``delta`` (completeness; with ``"special"`` the special tokens contribute exactly
zero). Label and score come from :class:`~sentiment_hf.inference.predictor.Predictor` reading the
first
window (``truncate`` mode): the answer ``sentiment predict`` gives for any text within
``max_length``; for a longer text ``predict`` may read every window and answer differently.

The model is called with ``inputs_embeds`` (no hooks on shared modules), so explanations can run
in one thread while predictions run in others on the same model.

Cost is bounded per call: at most :data:`MAX_TEXTS` texts, ``n_steps`` between 1 and
:data:`MAX_STEPS` (about ``n_steps`` forward and backward passes per text), inputs truncated to
the run's ``max_length`` tokens (``truncated`` says so; words past the cut get no entry).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.longtext import LongTextConfig

if TYPE_CHECKING:
    from sentiment_hf.inference.predictor import Predictor
    from sentiment_hf.rundir import RunDir

#: Most texts one call explains.
MAX_TEXTS = 16
#: Most integration steps (each is a forward and a backward pass per text).
MAX_STEPS = 256
#: Integration steps by default: small enough for interactive use.
DEFAULT_STEPS = 32
#: Baselines: [CLS] [PAD]... [SEP] ("special") or [PAD] everywhere ("pad").
BASELINES = ("special", "pad")
DEFAULT_BASELINE = "special"
#: How token attributions become word attributions: signed sum, or L2 norm (magnitude only).
AGGREGATES = ("sum", "l2")
#: Rows (texts x steps) per forward/backward pass.
DEFAULT_INTERNAL_BATCH = 64

_WORD = re.compile(r"\S+")


class WordAttribution(NamedTuple):
    """One whitespace-separated word: ``text[start:end] == word``, and its attribution."""

    word: str
    start: int
    end: int
    attribution: float


@dataclass
class Explanation:
    """Why one text got its label.

    ``words`` holds every word the model saw, in order; positive attributions push towards
    ``target`` (the explained label: ``label``, or when the policy abstained the label it would
    have chosen), negative ones against it. ``score`` is the calibrated probability of
    ``target``, ``baseline_score`` that of the baseline input, and ``delta`` the convergence
    error of the integral: ``sum(attributions) - (score - baseline_score)`` over all tokens.
    """

    text: str
    label: str
    score: float
    target: str
    words: list[WordAttribution]
    delta: float
    baseline_score: float
    abstained: bool = False
    truncated: bool = False
    n_steps: int = DEFAULT_STEPS
    baseline: str = DEFAULT_BASELINE
    aggregate: str = "sum"
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; words as ``{"word", "start", "end", "attribution"}`` objects."""
        return {
            "text": self.text,
            "label": self.label,
            "score": self.score,
            "abstained": self.abstained,
            "target": self.target,
            "words": [w._asdict() for w in self.words],
            "delta": self.delta,
            "baseline_score": self.baseline_score,
            "truncated": self.truncated,
            "tokens": self.tokens,
            "n_steps": self.n_steps,
            "baseline": self.baseline,
            "aggregate": self.aggregate,
        }


def whitespace_words(text: str) -> list[tuple[str, int, int]]:
    """``(word, start, end)`` of every whitespace-separated word of ``text``."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


@dataclass
class _Encoded:
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    special: list[int]
    token_type_ids: list[int] | None
    truncated: bool


def check_texts(texts: Sequence[str], max_texts: int = MAX_TEXTS) -> list[str]:
    """``texts`` as a list, or a :class:`SentimentError` naming the first problem."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise SentimentError("no input texts; give at least one text to explain")
    if len(texts) > max_texts:
        raise SentimentError(
            f"{len(texts)} texts to explain; the cap is {max_texts} per call "
            "(each costs about n_steps forward and backward passes)"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise SentimentError(f"input {i} is {type(text).__name__}, not a string")
        if not text.strip():
            raise SentimentError(f"input {i} is empty or whitespace-only; nothing to explain")
    return texts


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise SentimentError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


class Explainer:
    """Explain predictions of a run directory (or of a torch-backend :class:`Predictor`).

    ``internal_batch_size`` is how many interpolated inputs (texts x steps) one forward and
    backward pass takes; it bounds memory, not the result.
    """

    def __init__(
        self,
        model: str | Path | RunDir | Predictor,
        n_steps: int = DEFAULT_STEPS,
        baseline: str = DEFAULT_BASELINE,
        aggregate: str = "sum",
        internal_batch_size: int = DEFAULT_INTERNAL_BATCH,
        max_texts: int = MAX_TEXTS,
        device: str | None = None,
    ) -> None:
        from sentiment_hf.inference.predictor import Predictor

        if not 1 <= n_steps <= MAX_STEPS:
            raise SentimentError(f"n_steps must be between 1 and {MAX_STEPS}, got {n_steps}")
        _check_choice("baseline", baseline, BASELINES)
        _check_choice("aggregate", aggregate, AGGREGATES)
        if internal_batch_size < 1:
            raise SentimentError(f"internal_batch_size must be >= 1, got {internal_batch_size}")
        if not 1 <= max_texts <= MAX_TEXTS:
            raise SentimentError(f"max_texts must be between 1 and {MAX_TEXTS}, got {max_texts}")
        if isinstance(model, Predictor):
            if getattr(model.backend, "name", None) != "torch":
                raise SentimentError(
                    "explanations need gradients: pass a Predictor with the torch backend"
                )
            self.predictor = model
        else:
            self.predictor = Predictor(model, backend="torch", device=device)
        if not self.predictor.run.task.explainable:
            raise SentimentError(
                "explanations are for single-label runs; a multi-label run's labels are "
                "independent sigmoids that the attribution target (softmax) does not describe"
            )
        if not self.predictor.tokenizer.is_fast:
            raise SentimentError(
                f"{self.predictor.model_dir} has no fast tokenizer (tokenizer.json); explanations "
                "need its character offsets"
            )
        if self.predictor.tokenizer.pad_token_id is None:
            raise SentimentError("the run's tokenizer has no [PAD] token to build the baseline")
        self.n_steps = n_steps
        self.baseline = baseline
        self.aggregate = aggregate
        self.internal_batch_size = internal_batch_size
        self.max_texts = max_texts

    # ------------------------------------------------------------------ public
    def word_weights(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """``[(word, attribution), ...]`` per text, any number of texts (in chunks of
        ``max_texts``): the shape ``evaluate_model(explain=...)`` takes."""
        texts = list(texts)
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(texts), self.max_texts):
            for item in self.explain(texts[start : start + self.max_texts]):
                out.append([(w.word, w.attribution) for w in item.words])
        return out

    def explain(self, texts: Sequence[str]) -> list[Explanation]:
        """One :class:`Explanation` per text, in input order."""
        texts = check_texts(texts, self.max_texts)
        # The first window is what gets explained, so it is what is predicted here too (the
        # attributions then add up to this score); Predictor may read long texts in windows.
        first = LongTextConfig(mode="truncate")
        probs = self.predictor.policy.probabilities(
            self.predictor.predict_logits(texts, long_text=first)
        )
        preds = self.predictor.decide(texts, probs)
        targets, _ = self.predictor.policy.decide(probs)
        encoded = [self._encode(text) for text in texts]
        per_call = max(1, self.internal_batch_size // self.n_steps)
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].input_ids))
        results: list[Explanation | None] = [None] * len(texts)
        for start in range(0, len(order), per_call):
            idx = order[start : start + per_call]
            token_attr, deltas, base_scores = self._integrate(
                [encoded[i] for i in idx], [int(targets[i]) for i in idx]
            )
            for j, i in enumerate(idx):
                enc, pred = encoded[i], preds[i]
                target = self.predictor.labels[int(targets[i])]
                results[i] = Explanation(
                    text=texts[i],
                    label=pred.label,
                    score=pred.score,
                    target=target,
                    words=self._words(texts[i], enc, token_attr[j]),
                    delta=float(deltas[j]),
                    baseline_score=float(base_scores[j]),
                    abstained=pred.abstained,
                    truncated=enc.truncated,
                    n_steps=self.n_steps,
                    baseline=self.baseline,
                    aggregate=self.aggregate,
                    tokens=len(enc.input_ids),
                )
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ steps
    def _encode(self, text: str) -> _Encoded:
        """Tokens of ``text``: its first window (``truncate`` mode's cut, last token kept)."""
        from sentiment_hf.longtext import truncate_tokens

        enc = self.predictor.tokenizer(
            text,
            truncation=False,
            add_special_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        ids = list(enc["input_ids"])
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        special = list(enc["special_tokens_mask"])
        types = list(enc["token_type_ids"]) if "token_type_ids" in enc else None
        limit = self.predictor.max_length
        truncated = len(ids) > limit

        return _Encoded(
            input_ids=truncate_tokens(ids, limit),
            offsets=truncate_tokens(offsets, limit),
            special=truncate_tokens(special, limit),
            token_type_ids=truncate_tokens(types, limit) if types is not None else None,
            truncated=truncated,
        )

    def _integrate(
        self, batch: list[_Encoded], targets: list[int]
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Per-token attributions (sum or L2 over dims), deltas and baseline scores."""
        import torch
        from captum.attr import IntegratedGradients

        model = self.predictor.backend.model
        device = self.predictor.backend.device
        pad_id = int(self.predictor.tokenizer.pad_token_id)
        width = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        base_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        types = torch.zeros((len(batch), width), dtype=torch.long)
        for row, enc in enumerate(batch):
            n = len(enc.input_ids)
            ids[row, :n] = torch.tensor(enc.input_ids)
            mask[row, :n] = 1
            if enc.token_type_ids is not None:
                types[row, :n] = torch.tensor(enc.token_type_ids)
            if self.baseline == "special":
                keep = torch.tensor(enc.special, dtype=torch.bool)
                base_ids[row, :n] = torch.where(keep, ids[row, :n], pad_id)
        has_types = batch[0].token_type_ids is not None
        ids, base_ids, mask, types = (t.to(device) for t in (ids, base_ids, mask, types))
        embed = model.get_input_embeddings()
        temperature = float(self.predictor.policy.temperature)

        def forward(embeds: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            kwargs = {"token_type_ids": token_type_ids} if has_types else {}
            logits = model(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs).logits
            return torch.softmax(logits.float() / temperature, dim=-1)

        with torch.no_grad():
            inputs, baselines = embed(ids), embed(base_ids)
            base_scores = forward(baselines, mask, types)[torch.arange(len(batch)), targets]
        with torch.enable_grad():
            attributions, deltas = IntegratedGradients(forward).attribute(
                inputs,
                baselines=baselines,
                target=targets,
                additional_forward_args=(mask, types),
                n_steps=self.n_steps,
                internal_batch_size=self.internal_batch_size,
                return_convergence_delta=True,
            )
        attributions = attributions.detach().float()
        if self.aggregate == "l2":
            per_token = attributions.norm(dim=-1)
        else:
            per_token = attributions.sum(dim=-1)
        per_token = per_token.cpu().numpy()
        rows = [per_token[row, : len(enc.input_ids)] for row, enc in enumerate(batch)]
        return rows, deltas.detach().cpu().numpy(), base_scores.detach().cpu().numpy()

    def _words(self, text: str, enc: _Encoded, token_attr: np.ndarray) -> list[WordAttribution]:
        """Token attributions gathered into the whitespace words the model saw."""
        words = whitespace_words(text)
        starts = [start for _, start, _ in words]
        totals = np.zeros(len(words), dtype=np.float64)
        last_seen = -1
        for (start, end), special, value in zip(enc.offsets, enc.special, token_attr, strict=True):
            if special or end <= start:
                continue
            w = bisect.bisect_right(starts, start) - 1
            if w < 0 or start >= words[w][2]:  # offsets that include the leading space
                w += 1
                if w >= len(words) or words[w][1] >= end:
                    continue
            totals[w] += float(value) ** 2 if self.aggregate == "l2" else float(value)
            last_seen = max(last_seen, w)
        if self.aggregate == "l2":
            totals = np.sqrt(totals)
        seen = len(words) if not enc.truncated else last_seen + 1
        return [
            WordAttribution(word, start, end, float(totals[i]))
            for i, (word, start, end) in enumerate(words[:seen])
        ]


def explain(
    model_dir: str | Path | RunDir | Predictor,
    texts: Sequence[str],
    n_steps: int = DEFAULT_STEPS,
    baseline: str = DEFAULT_BASELINE,
    aggregate: str = "sum",
    internal_batch_size: int = DEFAULT_INTERNAL_BATCH,
    device: str | None = None,
) -> list[Explanation]:
    """Explain the prediction of each text (at most :data:`MAX_TEXTS`) with ``model_dir``.

    See :class:`Explainer`; build one to explain many calls without reloading the model.
    """
    check_texts(texts)  # before the model loads
    explainer = Explainer(
        model_dir,
        n_steps=n_steps,
        baseline=baseline,
        aggregate=aggregate,
        internal_batch_size=internal_batch_size,
        device=device,
    )
    return explainer.explain(texts)
