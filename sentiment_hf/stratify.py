"""Seeded, stratified cuts of a list of labels: the single-file train / validation / test split."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def stratum(label: Any) -> Any:
    """The stratification key of a raw label (a list of names: the set of them)."""
    return tuple(sorted(map(str, label))) if isinstance(label, (list, tuple)) else label


def stratified_cut(labels: list[Any], size: float, seed: int) -> tuple[list[int], list[int]]:
    """Row indices ``(kept, held_out)``: ``ceil(size * n)`` rows held out, every class in the
    same share (largest remainders), each class keeping at least one row on each side."""
    n = len(labels)
    n_out = math.ceil(size * n)
    groups: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(stratum(label), []).append(i)
    exact = {key: len(rows) * n_out / n for key, rows in groups.items()}
    take = {k: min(max(1, math.floor(v)), len(groups[k]) - 1) for k, v in exact.items()}
    by_remainder = sorted(groups, key=lambda k: exact[k] - math.floor(exact[k]), reverse=True)
    by_size = sorted(groups, key=lambda k: len(groups[k]), reverse=True)
    for key in by_remainder:  # hand out what flooring left over
        if sum(take.values()) >= n_out:
            break
        if take[key] < len(groups[key]) - 1:
            take[key] += 1
    for key in by_size:  # classes forced to 1 may have pushed the total over
        while sum(take.values()) > n_out and take[key] > 1:
            take[key] -= 1
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for key in groups:
        rows = np.array(groups[key])[rng.permutation(len(groups[key]))].tolist()
        held += rows[: take[key]]
        kept += rows[take[key] :]
    return sorted(kept), sorted(held)
