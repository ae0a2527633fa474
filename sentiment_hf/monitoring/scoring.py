"""Both sides of a drift report scored by the run's own torch model, in one way.

:class:`EmbeddingScorer` gives the calibrated probabilities (the label-mix and confidence checks)
and the mean-pooled last-layer embeddings (the MMD check) of a list of texts, whatever backend
served the requests. The probabilities are the ones the run answers with (its
:class:`~sentiment_hf.inference.predictor.Predictor`: long texts read by its long-text policy
and document rule); the embeddings read each text's first ``max_length`` tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.modeling import load_trained


class EmbeddingScorer:
    """The run's calibrated probabilities, as it answers them, and mean-pooled last-layer
    embeddings of the first ``max_length`` (default: the run's) tokens, from its torch model."""

    def __init__(
        self, model_dir: Path, max_length: int | None = None, batch_size: int = 64
    ) -> None:
        import torch

        self.torch = torch
        self.model = load_trained(model_dir)
        self.model.eval()
        self.predictor = Predictor(model_dir, batch_size=batch_size, model=self.model)
        self.tokenizer = self.predictor.tokenizer
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.max_length = max_length or self.predictor.max_length
        self.batch_size = batch_size

    def __call__(self, texts: list[str], desc: str = "scoring") -> tuple[np.ndarray, np.ndarray]:
        from tqdm.auto import tqdm

        torch = self.torch
        embs = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        starts = range(0, len(order), self.batch_size)
        # a bar on stderr when it is a terminal (disable=None), silent in logs and tests
        for start in tqdm(starts, desc=desc, unit=" batches", leave=False, disable=None):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                out = self.model(**enc, output_hidden_states=True)
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            embs.append(pooled.float().numpy())
        inverse = np.argsort(order)
        logits = self.predictor.predict_logits(texts, strict=False)
        return self.predictor.policy.probabilities(logits), np.concatenate(embs)[inverse]
