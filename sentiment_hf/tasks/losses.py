"""Weighted cross-entropy for the Trainer (``Trainer(compute_loss_func=...)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def weighted_cross_entropy(weights: Sequence[float]) -> Any:
    """A ``compute_loss_func(outputs, labels, num_items_in_batch)`` for the HF Trainer.

    Per batch it is torch's weighted cross-entropy, ``sum_i w[y_i] * nll_i / sum_i w[y_i]``.
    The Trainer counts a ``compute_loss_func`` loss as already scaled for gradient accumulation,
    so when ``num_items_in_batch`` (the labels of the whole accumulated step) is given, the
    batch's loss is multiplied by ``batch size / num_items_in_batch``: with one batch per step
    that is 1, and with ``k`` equal batches each contributes ``1/k`` of the step's mean.
    """
    import torch
    import torch.nn.functional as F

    weight = torch.tensor(list(weights), dtype=torch.float32)

    def compute_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        logits = logits.view(-1, logits.shape[-1]).float()
        labels = labels.view(-1)
        loss = F.cross_entropy(logits, labels, weight=weight.to(logits.device))
        if num_items_in_batch is not None:
            loss = loss * (labels.numel() / num_items_in_batch)
        return loss

    return compute_loss
