"""Two-sample tests used by the drift report (scipy + numpy).

* :func:`ks_test` — Kolmogorov-Smirnov on a 1-d quantity (text length, confidence).
* :func:`chi2_test` — chi-square on category counts (predicted-label mix, in/out of vocabulary).
* :func:`mmd_permutation_test` — kernel maximum mean discrepancy on embeddings, with a
  permutation p-value (Gretton et al. 2012, unbiased MMD², Gaussian kernel, median heuristic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TwoSampleResult:
    """A statistic and its p-value (small p: the two samples differ)."""

    statistic: float
    p_value: float


def ks_test(reference: np.ndarray, current: np.ndarray) -> TwoSampleResult:
    """Two-sided two-sample Kolmogorov-Smirnov test."""
    from scipy.stats import ks_2samp

    res = ks_2samp(np.asarray(reference, float), np.asarray(current, float))
    return TwoSampleResult(float(res.statistic), float(res.pvalue))


def chi2_test(reference_counts: np.ndarray, current_counts: np.ndarray) -> TwoSampleResult:
    """Chi-square test of homogeneity on two count vectors over the same categories.

    Categories empty in both samples are dropped; one category left means no test (p = 1).
    """
    from scipy.stats import chi2_contingency

    table = np.vstack([reference_counts, current_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return TwoSampleResult(0.0, 1.0)
    res = chi2_contingency(table, correction=False)
    return TwoSampleResult(float(res.statistic), float(res.pvalue))


def _sq_dists(x: np.ndarray) -> np.ndarray:
    sq = (x * x).sum(axis=1)
    d = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    return np.maximum(d, 0.0)


def _mmd2_unbiased(k: np.ndarray, in_x: np.ndarray) -> float:
    """Unbiased MMD² from the pooled kernel matrix and a boolean mask of the first sample."""
    in_y = ~in_x
    m, n = int(in_x.sum()), int(in_y.sum())
    kxx = k[np.ix_(in_x, in_x)]
    kyy = k[np.ix_(in_y, in_y)]
    kxy = k[np.ix_(in_x, in_y)]
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd_permutation_test(
    reference: np.ndarray, current: np.ndarray, permutations: int = 500, seed: int = 0
) -> TwoSampleResult:
    """MMD² between two embedding samples and its permutation p-value.

    The Gaussian kernel bandwidth is the median pairwise distance of the pooled sample. The
    p-value is (1 + #permutations with MMD² ≥ observed) / (1 + permutations).
    """
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("MMD needs at least two embeddings in each sample")
    pooled = np.vstack([x, y])
    d2 = _sq_dists(pooled)
    upper = d2[np.triu_indices_from(d2, k=1)]
    bandwidth2 = float(np.median(upper)) or float(upper.mean()) or 1.0
    k = np.exp(-d2 / bandwidth2)
    mask = np.zeros(len(pooled), dtype=bool)
    mask[: len(x)] = True
    observed = _mmd2_unbiased(k, mask)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(permutations):
        perm = rng.permutation(mask)
        if _mmd2_unbiased(k, perm) >= observed:
            exceed += 1
    return TwoSampleResult(observed, (1 + exceed) / (1 + permutations))
