"""Self-contained HTML for a drift report (inline CSS, plots as data: URIs, no external assets).

The page is the template ``templates/drift_report.html.j2``, rendered by :mod:`sentiment_hf.render`;
this module draws its two histograms.
"""

from __future__ import annotations

import io

import numpy as np

from sentiment_hf.monitoring.report import DriftReport, format_value
from sentiment_hf.render import render


def _histogram(ref: np.ndarray, cur: np.ndarray, title: str) -> bytes:
    """PNG of the reference and request distributions of one measure, on the same bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.0), dpi=100)
    both = np.concatenate([ref, cur])
    bins = np.histogram_bin_edges(both, bins=30)
    ax.hist(ref, bins=bins, alpha=0.55, density=True, label="reference (train)")
    ax.hist(cur, bins=bins, alpha=0.55, density=True, label="requests")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def render_html(report: DriftReport, arrays: dict[str, np.ndarray]) -> str:
    """The report as one HTML page."""
    plots = [
        (title, _histogram(arrays[f"ref_{key}"], arrays[f"cur_{key}"], title))
        for key, title in (("len", "characters per text"), ("conf", "confidence (model re-scored)"))
    ]
    return render("drift_report.html.j2", report=report, plots=plots, format_value=format_value)
