"""Seeded, stratified cuts of a label column: the single-file train / validation / test split."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from sentiment_hf.data.arrow import group_codes


def stratum(label: Any) -> Any:
    """The stratification key of a raw label (a list of names: the set of them)."""
    return tuple(sorted(map(str, label))) if isinstance(label, (list, tuple)) else label


def _codes(labels: Any) -> tuple[np.ndarray, int]:
    """Each row's stratum number (strata numbered by first appearance) and how many there are."""
    if isinstance(labels, (pa.Array, pa.ChunkedArray)):
        codes, keys = group_codes(
            pa.chunked_array([labels]) if isinstance(labels, pa.Array) else labels
        )
        return codes, len(keys)
    numbers: dict[Any, int] = {}
    codes = np.array([numbers.setdefault(stratum(x), len(numbers)) for x in labels], dtype=np.int64)
    return codes, len(numbers)


def stratified_cut(labels: Any, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(kept, held_out)``, each sorted: ``ceil(size * n)`` rows held out, every
    class in the same share (largest remainders), each class keeping at least one row on each
    side. ``labels`` is an Arrow column (grouped without Python values) or a list."""
    codes, k = _codes(labels)
    n = len(codes)
    n_out = math.ceil(size * n)
    sizes = np.bincount(codes, minlength=k).tolist()
    groups = range(k)  # in order of first appearance, as a dict of the labels would be
    exact = {g: sizes[g] * n_out / n for g in groups}
    take = {g: min(max(1, math.floor(v)), sizes[g] - 1) for g, v in exact.items()}
    by_remainder = sorted(groups, key=lambda g: exact[g] - math.floor(exact[g]), reverse=True)
    by_size = sorted(groups, key=lambda g: sizes[g], reverse=True)
    for g in by_remainder:  # hand out what flooring left over
        if sum(take.values()) >= n_out:
            break
        if take[g] < sizes[g] - 1:
            take[g] += 1
    for g in by_size:  # classes forced to 1 may have pushed the total over
        while sum(take.values()) > n_out and take[g] > 1:
            take[g] -= 1
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")  # rows of each group together, ascending
    starts = np.concatenate([[0], np.cumsum(sizes)])
    kept, held = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for g in groups:
        rows = order[starts[g] : starts[g + 1]]
        rows = rows[rng.permutation(len(rows))]
        held.append(rows[: take[g]])
        kept.append(rows[take[g] :])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))
