"""The evaluation report a person reads: one self-contained HTML file from plain data.

:func:`render_eval_report` takes what ``evaluate_model`` computed (the metrics dict as it goes
to ``{split}_metrics.json``, label names, the PNGs, the most confident mistakes, the
accuracy-by-length table and optional word attributions) and returns a page with inline CSS,
the images as base64 ``data:`` URIs, no script and no external reference, readable on a laptop
and on a phone. Every piece of text is escaped: review texts and label names are user data.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment_hf.imbalance import UNBALANCED_RATIO
from sentiment_hf.tasks.calibration import COVERAGES, coverage_key

#: Image keys the report places, in page order: confusion matrix, reliability diagram,
#: risk-coverage curve, accuracy-by-length bars.
IMAGE_KEYS = ("confusion", "reliability", "risk_coverage", "length")
#: Calibration measures of the before/after table (metrics key suffix, row name).
CALIBRATION_ROWS = (
    ("nll", "NLL"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("mean_confidence", "mean confidence"),
)
#: Highest background alpha of a highlighted word (the word with the largest |attribution|).
MAX_ALPHA = 0.7
TOWARDS_RGB = "46, 160, 67"  # green: pushes towards the predicted label
AGAINST_RGB = "207, 34, 46"  # red: pushes against it

CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --bg: #f6f8fa; --card: #ffffff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 16px; }
h1 { font-size: 1.5rem; margin: 24px 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 0 0 12px; }
p { margin: 8px 0; }
.meta, .note, footer { color: var(--muted); font-size: 0.9rem; overflow-wrap: anywhere; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 16px; margin: 16px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 12px; }
.card .name { color: var(--muted); font-size: 0.9rem; }
.card .value { font-size: 2rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .ci { font-size: 0.9rem; font-variant-numeric: tabular-nums; }
.nowrap { white-space: nowrap; }
.pair { display: grid; gap: 16px; align-items: start;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 340px), 1fr)); }
figure { margin: 0; }
img { display: block; max-width: 100%; height: auto; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-weight: 600; }
.num { text-align: right; }
ol.mistakes { margin: 0; padding: 0; list-style: none; }
ol.mistakes li { border-top: 1px solid var(--line); padding: 10px 0; }
ol.mistakes li:first-child { border-top: 0; padding-top: 0; }
.why { color: var(--muted); font-size: 0.9rem; }
.text { overflow-wrap: anywhere; margin-top: 4px; }
.w { border-radius: 3px; padding: 0 2px; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px;
  vertical-align: -0.1em; }
@media (max-width: 600px) {
  body { font-size: 15px; }
  section { padding: 12px; }
  .card .value { font-size: 1.6rem; }
  th, td { padding: 5px 4px; font-size: 0.875rem; }
}
"""


@dataclass(frozen=True)
class Mistake:
    """One misclassified input: its index in the split, text, true and predicted label names,
    and the (calibrated) probability of the predicted, wrong label."""

    index: int
    text: str
    label: str
    predicted: str
    probability: float


def esc(value: Any) -> str:
    """``value`` as HTML-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``n/a`` for a missing value."""
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def png_data_uri(image: str | Path | bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes or of a PNG file."""
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(images: dict[str, str | Path | bytes | None], key: str, alt: str) -> str:
    image = images.get(key)
    if image is None:
        return ""
    return f'<figure><img src="{png_data_uri(image)}" alt="{esc(alt)}"></figure>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """A table of already-escaped cells; columns from ``numeric_from`` on are right-aligned."""

    def cells(row: Sequence[str], tag: str) -> str:
        return "".join(
            f'<{tag} class="num">{c}</{tag}>' if i >= numeric_from else f"<{tag}>{c}</{tag}>"
            for i, c in enumerate(row)
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return (
        f'<div class="table-wrap"><table><thead><tr>{cells(header, "th")}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(heading)}</h2>{body}</section>'


def _pair(first: str, second: str) -> str:
    """Two blocks side by side on a wide screen, one above the other on a phone."""
    return f'<div class="pair"><div>{first}</div><div>{second}</div></div>'


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _card(name: str, metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    interval = metrics.get(f"{key}_ci95")
    ci = (
        f'<div class="ci" data-ci95="{esc(interval[0])},{esc(interval[1])}">'
        f'95 % CI <span class="nowrap">{fmt(interval[0])}&ndash;{fmt(interval[1])}</span></div>'
        if interval
        else '<div class="ci">no interval</div>'
    )
    return (
        f'<div class="card"><div class="name">{esc(name)}</div>'
        f'<div class="value" data-value="{esc(value)}">{fmt(value)}</div>{ci}</div>'
    )


def highlight(words: Sequence[tuple[str, float]]) -> str:
    """Words as spans, green towards the predicted label, red against it; alpha ∝ |score|."""
    peak = max((abs(score) for _, score in words), default=0.0) or 1.0
    spans = []
    for word, score in words:
        rgb = TOWARDS_RGB if score >= 0 else AGAINST_RGB
        alpha = MAX_ALPHA * abs(score) / peak
        spans.append(
            f'<span class="w" style="background: rgba({rgb}, {alpha:.2f})" '
            f'title="{score:+.3f}">{esc(word)}</span>'
        )
    return " ".join(spans)


def _mistakes(
    mistakes: Sequence[Mistake], attributions: Sequence[Sequence[tuple[str, float]]] | None
) -> str:
    if not mistakes:
        return "<p>No misclassified inputs.</p>"
    items = []
    for i, mistake in enumerate(mistakes):
        words = attributions[i] if attributions is not None else None
        text = highlight(words) if words else esc(mistake.text)
        items.append(
            f'<li><div class="why">#{esc(mistake.index)} · true <b>{esc(mistake.label)}</b>'
            f" → predicted <b>{esc(mistake.predicted)}</b> "
            f'<span class="nowrap">with p = {fmt(mistake.probability)}</span></div>'
            f'<div class="text">{text}</div></li>'
        )
    legend = ""
    if attributions is not None:
        legend = (
            '<p class="note">Words are highlighted by their attribution: '
            f'<span class="swatch" style="background: rgba({TOWARDS_RGB}, {MAX_ALPHA})"></span>'
            " towards the predicted label, "
            f'<span class="swatch" style="background: rgba({AGAINST_RGB}, {MAX_ALPHA})"></span>'
            " against it; the stronger the colour, the larger |attribution| (each word's "
            "tooltip has its value).</p>"
        )
    return f'{legend}<ol class="mistakes">{"".join(items)}</ol>'


def render_eval_report(
    split: str,
    metrics: dict[str, Any],
    labels: Sequence[str],
    images: dict[str, str | Path | bytes | None],
    mistakes: Sequence[Mistake],
    length_table: Sequence[dict[str, Any]],
    attributions: Sequence[Sequence[tuple[str, float]]] | None = None,
    title: str = "evaluation",
    policy: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    length_unit: str = "tokens",
    multi_label: bool = False,
) -> str:
    """The evaluation report of ``split`` as one self-contained HTML page.

    ``metrics`` uses the keys of ``{split}_metrics.json`` (``{split}_accuracy``,
    ``{split}_accuracy_ci95``, ``{split}_per_class``, ...; a missing one shows as n/a).
    ``images`` maps :data:`IMAGE_KEYS` to PNG paths or bytes. ``length_table`` rows are
    ``{"min", "max", "samples", "accuracy"}``. ``attributions[i]``, when given, is the
    ``(word, attribution)`` list of ``mistakes[i]``; positive pushes towards the predicted label.
    ``policy`` is the decision policy's dict; ``details`` are extra header facts.
    ``multi_label``: headline subset accuracy and micro / macro F1, ``per_class`` holds labels,
    calibration is per label, accuracy means subset (exact set) accuracy.
    """
    if attributions is not None and len(attributions) != len(mistakes):
        raise ValueError(
            f"{len(attributions)} attribution lists for {len(mistakes)} mistakes; "
            "give one per mistake"
        )
    m = {key.removeprefix(f"{split}_"): value for key, value in metrics.items()}
    policy = policy or {}
    temperature = policy.get("temperature", 1.0)
    facts = {"split": split, "samples": m.get("samples"), **(details or {})}
    meta = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in facts.items() if v is not None)

    headline = [("Accuracy", "accuracy"), ("Macro F1", "f1_macro")]
    if multi_label:
        headline = [("Subset accuracy", "accuracy"), ("Micro F1", "f1"), ("Macro F1", "f1_macro")]
    elif len(labels) == 2:  # with more labels, F1 is the macro F1
        headline.insert(1, (f"F1 (positive: {labels[1]})", "f1"))
    balance_note = ""
    if m.get("unbalanced"):  # macro F1 and each class's recall lead (sentiment_hf.imbalance)
        recalls = m.get("recall_per_class") or {}
        m.update({f"recall[{name}]": value for name, value in recalls.items()})
        headline = [
            ("Macro F1", "f1_macro"),
            *[(f"Recall: {name}", f"recall[{name}]") for name in recalls],
            *[row for row in headline if row[1] != "f1_macro"],
        ]
        ratios = [
            f"{esc(name)} {'&infin;' if ratio is None else fmt(ratio, 1)}"
            for name, key in (("train", "train_imbalance_ratio"), (split, "imbalance_ratio"))
            if key in m
            for ratio in [m[key]]
        ]
        balance_note = _note(
            f"Classes are unbalanced (largest / smallest class share: {', '.join(ratios)}; "
            f"the threshold is {fmt(UNBALANCED_RATIO, 1)}), so macro F1 and the recall of each "
            "class come first: accuracy rewards predicting the majority class."
        )
    cards = "".join(_card(name, m, key) for name, key in headline)
    per_class = m.get("per_class") or {}
    per_class_rows = [
        [
            esc(name),
            fmt(row.get("precision")),
            fmt(row.get("recall")),
            fmt(row.get("f1")),
            esc(row.get("support")),
        ]
        for name, row in per_class.items()
    ]
    calibration_rows = [
        [esc(name), fmt(m.get(f"{key}_uncalibrated")), fmt(m.get(key))]
        for key, name in CALIBRATION_ROWS
    ]
    after = f'calibrated<br><span class="nowrap">T = {fmt(temperature, 2)}</span>'
    calibration_note = (
        "Temperature scaling fitted on the validation split; it changes probabilities, "
        "never the ranking."
        if temperature != 1.0
        else "The run stores no temperature, so calibrated and uncalibrated are the same."
    )
    coverage_rows = [[f"{round(c * 100)} %", fmt(m.get(coverage_key(c)))] for c in COVERAGES]
    if m.get("coverage") is not None:
        coverage_rows.append(
            [
                f"{fmt(m['coverage'] * 100, 1)} % (abstain below "
                f"{esc(policy.get('min_confidence'))})",
                fmt(m.get("answered_accuracy")),
            ]
        )
    length_rows = [
        [
            f"{esc(row['min'])}&ndash;{esc(row['max'])}"
            if row["min"] != row["max"]
            else esc(row["min"]),
            f'<span data-samples="{esc(row["samples"])}">{esc(row["samples"])}</span>',
            fmt(row["accuracy"]),
        ]
        for row in length_table
    ]
    policy_note = ""
    if multi_label:
        method = policy.get("calibration") or "none"
        after = f'calibrated<br><span class="nowrap">per label: {esc(method)}</span>'
        calibration_note = (
            f"Per-label calibration ({esc(method)}) chosen on validation by cross-validated log "
            "loss; measured over every (text, label) pair as a binary decision."
        )
        thresholds = policy.get("thresholds") or [0.5] * len(labels)
        policy_note = _note(
            "A label is given when its probability reaches its threshold (tuned on validation "
            f"for {esc(policy.get('threshold_metric') or 'f1')}): "
            + ", ".join(f"{esc(n)} {fmt(t, 2)}" for n, t in zip(labels, thresholds, strict=False))
            + ". Subset accuracy counts a text right only when its whole label set is."
        )
    elif policy.get("threshold") is not None:
        policy_note = (
            f'<p class="note">Binary threshold on p({esc(labels[1])}): '
            f"{fmt(policy['threshold'], 2)} (tuned for {esc(policy.get('threshold_metric'))}).</p>"
        )

    notes = {
        "headline": "95 % intervals: percentile bootstrap over the inputs (1,000 resamples, "
        "seeded).",
        "calibration": f"{calibration_note} Lower is better for NLL, Brier and ECE (top-label, "
        "10 equal-width confidence bins).",
        "length": "Buckets are length quartiles (equal lengths stay together).",
        "mistakes": "The misclassified inputs whose wrong label got the highest calibrated "
        "probability p; all of them are in the misclassified CSV.",
    }
    sections = [
        _section(
            "headline",
            "Headline metrics",
            f'<div class="cards">{cards}</div>'
            + balance_note
            + _note(notes["headline"])
            + policy_note,
        ),
        _section(
            "per-class",
            "Per class",
            _pair(
                _table(["label", "precision", "recall", "F1", "support"], per_class_rows),
                _img(images, "confusion", "confusion matrix, rows true label, columns predicted"),
            ),
        ),
        _section(
            "calibration",
            "Calibration",
            _pair(
                _img(images, "reliability", "reliability diagram: accuracy against confidence"),
                _table(["measure", "uncalibrated", after], calibration_rows)
                + _note(notes["calibration"]),
            ),
        ),
        _section(
            "coverage",
            "Risk and coverage",
            _pair(
                _img(images, "risk_coverage", "accuracy against coverage, most confident first"),
                _table(["answered (most confident first)", "accuracy"], coverage_rows),
            ),
        ),
        _section(
            "length",
            "Accuracy by text length",
            _pair(
                _img(images, "length", f"accuracy per length bucket ({length_unit})"),
                _table([esc(length_unit), "samples", "accuracy"], length_rows)
                + _note(notes["length"]),
            ),
        ),
        _section(
            "mistakes",
            "Most confident mistakes",
            _note(notes["mistakes"]) + _mistakes(mistakes, attributions),
        ),
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{esc(title)}: {esc(split)} evaluation</title>'
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}: {esc(split)} evaluation</h1>"
        f'<p class="meta">{meta}</p></header>'
        f"<main>{''.join(sections)}</main>"
        "<footer><p>Written by <code>sentiment eval</code> (sentiment_hf). "
        "The numbers are those of the metrics JSON beside this file.</p></footer>"
        "</body></html>\n"
    )
