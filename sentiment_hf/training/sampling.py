"""Length-grouped batches whose order is a function of (seed, epoch), so a resume is exact.

transformers' ``LengthGroupedSampler`` draws each epoch's order from torch's global RNG at the
moment the epoch starts. A run resumed mid-epoch restores the RNG of its checkpoint, not of the
epoch start, and so trains the rest of the epoch on other batches than an uninterrupted run.
Here each epoch's order comes from a generator seeded with ``seed + epoch`` (the Trainer calls
``set_epoch`` before every epoch, resumed or not); the same order is drawn on every DDP rank.

Checked against transformers 5.x: ``Trainer._get_train_sampler(train_dataset)`` returns the
sampler and the epoch loop calls ``set_epoch`` on the dataloader's sampler.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class EpochSeededLengthGroupedSampler:
    """``LengthGroupedSampler``'s grouping, with each epoch's randomness seeded by the epoch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of ``epoch`` (called by the Trainer before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class SeededSamplingMixin:
    """Mix into a Trainer class: swap the global-RNG length sampler for the epoch-seeded one."""

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = super()._get_train_sampler(train_dataset)  # type: ignore[misc]
        if type(sampler) is not LengthGroupedSampler:
            return sampler
        args = self.args  # type: ignore[attr-defined]
        return EpochSeededLengthGroupedSampler(sampler.lengths, sampler.batch_size, args.seed)


def with_seeded_sampling(trainer_cls: type) -> type:
    """``trainer_cls`` with :class:`SeededSamplingMixin` in front (once)."""
    if issubclass(trainer_cls, SeededSamplingMixin):
        return trainer_cls
    return type(trainer_cls.__name__, (SeededSamplingMixin, trainer_cls), {})
