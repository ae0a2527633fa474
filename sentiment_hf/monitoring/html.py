"""Self-contained HTML for a drift report (inline CSS, plots as data: URIs, no external assets)."""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

from sentiment_hf.monitoring.report import DriftCheck, DriftReport, format_value

STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2328}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;font-size:.9rem}
td{vertical-align:top}
th{background:#f6f8fa}
.flag{font-weight:600;padding:.6rem 1rem;border-radius:6px;display:inline-block}
.bad{background:#ffebe9;color:#cf222e}.ok{background:#dafbe1;color:#1a7f37}
td.bad,td.ok{font-weight:600}
.muted{color:#57606a;font-size:.85rem}
img{max-width:48%;margin-right:1%}
"""


def _histogram(ref: np.ndarray, cur: np.ndarray, title: str) -> str:
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
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{escape(title)}" src="data:image/png;base64,{data}">'


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _value(check: DriftCheck, value: float, source: str | None = None) -> str:
    """A reference or request value with its unit ("-" when the check has no reference value)."""
    if check.reference_source is None:
        return "-"
    text = escape(format_value(value, check.unit))
    return text + (f"<br><span class='muted'>{escape(source)}</span>" if source else "")


def render_html(report: DriftReport, arrays: dict[str, np.ndarray]) -> str:
    """The report as one HTML page."""
    verdict = (
        '<span class="flag bad">DRIFT DETECTED</span>'
        if report.drift_detected
        else '<span class="flag ok">no drift detected</span>'
    )
    rows = []
    for c in report.checks:
        status = '<td class="bad">drift</td>' if c.drifted else '<td class="ok">ok</td>'
        details = "<br>".join(f"{escape(str(k))}: {escape(str(v))}" for k, v in c.details.items())
        rows.append(
            f"<tr><td><b>{escape(c.name)}</b><br>"
            f"<span class='muted'>{escape(c.description)}</span></td>"
            f"<td>{_value(c, c.reference, c.reference_source)}</td><td>{_value(c, c.current)}</td>"
            f"<td>{_fmt(c.statistic)}<br><span class='muted'>{escape(c.statistic_name)}</span></td>"
            f"<td>{_fmt(c.p_value)}</td><td>{escape(c.rule)}</td>{status}"
            f"<td class='muted'>{details}</td></tr>"
        )
    served = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in report.served.items()
    )
    plots = _histogram(arrays["ref_len"], arrays["cur_len"], "characters per text") + _histogram(
        arrays["ref_conf"], arrays["cur_conf"], "confidence (model re-scored)"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title><style>{STYLE}</style></head>
<body>
<h1>Drift report</h1>
<p>{verdict}</p>
<p class="muted">model {escape(report.model_dir)} · requests {escape(report.requests)}
({report.n_requests} rows{", since " + escape(report.since) if report.since else ""}) ·
reference: {report.n_reference} training texts · made {escape(report.created_at)}</p>
<table><tr><th>check</th><th>reference</th><th>requests</th><th>statistic</th><th>p-value</th>
<th>rule</th><th>status</th><th>details</th></tr>
{"".join(rows)}
</table>
<div>{plots}</div>
<h2>As served</h2>
<table>{served}</table>
</body></html>
"""
