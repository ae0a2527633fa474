"""Both sides of a drift report scored by the run's own torch model, in one way.

:class:`EmbeddingScorer` gives the calibrated probabilities (the label-mix and confidence checks)
and the mean-pooled last-layer embeddings (the MMD check) of a list of texts, whatever backend
served the requests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sentiment_hf.modeling import load_trained
from sentiment_hf.tasks.policy import SingleLabelPolicy


class EmbeddingScorer:
    """Calibrated probabilities (``probabilities``: the run's policy's, logits -> probabilities;
    a plain softmax when None) and mean-pooled last-layer embeddings from a run's torch model."""

    def __init__(
        self,
        model_dir: Path,
        max_length: int = 128,
        batch_size: int = 64,
        probabilities: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        import torch
        from transformers import AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = load_trained(model_dir)
        self.model.eval()
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.max_length = max_length
        self.batch_size = batch_size
        self.probabilities = probabilities or SingleLabelPolicy().probabilities

    def __call__(self, texts: list[str], desc: str = "scoring") -> tuple[np.ndarray, np.ndarray]:
        from tqdm.auto import tqdm

        torch = self.torch
        probs, embs = [], []
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
            probs.append(self.probabilities(out.logits.float().numpy()))
            embs.append(pooled.float().numpy())
        inverse = np.argsort(order)
        return np.concatenate(probs)[inverse], np.concatenate(embs)[inverse]
