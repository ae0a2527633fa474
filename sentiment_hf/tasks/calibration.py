"""Probability calibration and its measures: temperature scaling, NLL, Brier, ECE, risk-coverage.

Everything works on logits (``(n, num_labels)``) and integer labels, in numpy, so the same code
scores the PyTorch and the ONNX backends. ECE is the top-label expected calibration error over
:data:`ECE_BINS` equal-width confidence bins (a bin's weight is its share of the samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError

ECE_BINS = 10
#: Coverages at which eval reports selective accuracy (answer only the most confident share).
COVERAGES = (0.9, 0.8)
#: Metrics eval brackets with a bootstrap 95 % interval (percentile method, seeded).
BOOTSTRAP_METRICS = ("accuracy", "f1", "f1_macro")


def coverage_key(share: float) -> str:
    """The metric name of the accuracy at ``share`` coverage (``accuracy_at_90pct_coverage``)."""
    return f"accuracy_at_{round(share * 100)}pct_coverage"


#: Search range of log(temperature): T in [e^-3, e^3] ≈ [0.05, 20].
LOG_T_BOUNDS = (-3.0, 3.0)
#: What the temperature minimises on validation (see :func:`fit_temperature`).
TEMPERATURE_OBJECTIVES = ("nll", "ece")
ECE_GRID_POINTS = 601


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean squared distance to the one-hot label (0 best, 2 worst)."""
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error over ``bins`` equal-width confidence bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i+1]]; confidence 0 cannot occur (max of a softmax >= 1/K)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def calibration_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NLL, Brier, ECE, mean confidence and accuracy of ``probs``."""
    labels = np.asarray(labels)
    return {
        "nll": nll(probs, labels),
        "brier": brier(probs, labels),
        "ece": ece(probs, labels),
        "mean_confidence": float(probs.max(axis=1).mean()),
        "accuracy": float((probs.argmax(axis=1) == labels).mean()),
    }


def check_objective(objective: str) -> str:
    """``objective`` if it is one of :data:`TEMPERATURE_OBJECTIVES`, else a clear error."""
    if objective not in TEMPERATURE_OBJECTIVES:
        raise SentimentError(
            f"unknown calibration objective {objective!r}; choose "
            f"{', '.join(TEMPERATURE_OBJECTIVES)}"
        )
    return objective


def fit_temperature(logits: np.ndarray, labels: np.ndarray, objective: str = "nll") -> float:
    """The temperature T that minimises ``objective`` of ``softmax(logits / T)`` on ``labels``.

    ``nll``: a bounded 1-D search (the classic temperature scaling). ``ece``: a grid of
    :data:`ECE_GRID_POINTS` temperatures, log-spaced over the same range; ECE is a step
    function of T, so ties go to the T nearest the NLL optimum.
    """
    from scipy.optimize import minimize_scalar

    check_objective(objective)
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)

    def loss(log_t: float) -> float:
        return nll(softmax(logits / np.exp(log_t)), labels)

    found = minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    if objective == "nll":
        return float(np.exp(found.x))
    grid = np.linspace(*LOG_T_BOUNDS, ECE_GRID_POINTS)
    errors = np.array([ece(softmax(logits / np.exp(g)), labels) for g in grid])
    best = np.flatnonzero(errors <= errors.min() + 1e-12)
    return float(np.exp(grid[best[np.argmin(np.abs(grid[best] - found.x))]]))


def risk_coverage(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, selective accuracy): accuracy over the most confident k inputs, k = 1..n."""
    order = np.argsort(-probs.max(axis=1), kind="stable")
    correct = (probs.argmax(axis=1) == np.asarray(labels))[order]
    k = np.arange(1, len(order) + 1)
    return k / len(order), np.cumsum(correct) / k


def accuracy_at_coverage(probs: np.ndarray, labels: np.ndarray, coverage: float) -> float:
    """Accuracy when answering only the most confident ``coverage`` share of the inputs."""
    cov, acc = risk_coverage(probs, labels)
    k = max(1, round(coverage * len(cov)))
    return float(acc[k - 1])


def plot_reliability(
    curves: dict[str, np.ndarray], labels: np.ndarray, path: Path, title: str
) -> Path:
    """Reliability diagram (accuracy vs confidence per bin) of each named probability array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=120)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    for name, probs in curves.items():
        confidence = probs.max(axis=1)
        correct = probs.argmax(axis=1) == labels
        which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, ECE_BINS - 1)
        xs, ys = [], []
        for b in range(ECE_BINS):
            mask = which == b
            if mask.sum() >= 1:
                xs.append(confidence[mask].mean())
                ys.append(correct[mask].mean())
        ax.plot(xs, ys, marker="o", label=f"{name} (ECE {ece(probs, labels):.3f})")
    ax.set_xlabel("confidence (top label)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_risk_coverage(probs: np.ndarray, labels: np.ndarray, path: Path, title: str) -> Path:
    """Selective accuracy against coverage, with the reported coverages marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cov, acc = risk_coverage(probs, labels)
    fig, ax = plt.subplots(figsize=(4.6, 3.6), dpi=120)
    ax.plot(cov, acc, color="tab:blue")
    for i, c in enumerate(COVERAGES):
        value = accuracy_at_coverage(probs, labels, c)
        ax.plot([c], [value], marker="o", color="tab:red")
        # left of the point, alternately below and above, so neighbours do not overlap
        ax.annotate(
            f"{value:.3f} @ {c:.0%}",
            (c, value),
            textcoords="offset points",
            xytext=(-6, -14 if i % 2 == 0 else 8),
            ha="right",
            fontsize=8,
        )
    ax.set_xlabel("coverage (share answered, most confident first)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def bootstrap_interval(
    labels: np.ndarray,
    preds: np.ndarray,
    metric: Any,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(labels, preds)`` over resampled inputs."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), size=(n_resamples, len(labels)))
    values = np.array([metric(labels[i], preds[i]) for i in idx])
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
