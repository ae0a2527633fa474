"""Pictures of `sentiment eval` (calibration.py draws the others): counts heat map, length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.tasks.base import Counts


def save_counts_heatmap(fig: Any, ax: Any, matrix: np.ndarray, path: Path) -> Path:
    """Write each count into its cell of an ``imshow`` heat map (white on dark), save, close."""
    import matplotlib.pyplot as plt

    peak = matrix.max() or 1
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > peak / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_counts(counts: Counts, path: Path, title: str) -> Path:
    """Save a task's count table (:meth:`~sentiment_hf.tasks.base.Task.counts`: a confusion
    matrix, or each label's 2x2 counts) as a labelled heat map PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns = len(counts.rows), len(counts.columns)
    size = (3.2 + 0.4 * max(columns, 4), 3 + 0.4 * rows)
    fig, ax = plt.subplots(figsize=size, dpi=120)
    ax.imshow(counts.matrix, cmap="Blues", aspect="auto")
    ax.set_xticks(range(columns), counts.columns)
    ax.set_yticks(range(rows), counts.rows)
    ax.set_xlabel(counts.column_title)
    ax.set_ylabel(counts.row_title)
    ax.set_title(title, fontsize=9)
    return save_counts_heatmap(fig, ax, counts.matrix, path)


def plot_accuracy_by_length(
    rows: list[dict[str, Any]], overall: float, path: Path, title: str, unit: str = "tokens"
) -> Path:
    """Bar chart of the accuracy per length bucket, the overall accuracy as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.2), dpi=120)
    names = [f"{r['min']}-{r['max']}\n(n={r['samples']})" for r in rows]
    ax.bar(range(len(rows)), [r["accuracy"] for r in rows], color="tab:blue")
    ax.axhline(overall, color="grey", linestyle="--", linewidth=1, label=f"all ({overall:.3f})")
    ax.set_xticks(range(len(rows)), names, fontsize=8)
    ax.set_xlabel(f"length ({unit})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.15)  # the strip above 1 keeps the legend off the bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
