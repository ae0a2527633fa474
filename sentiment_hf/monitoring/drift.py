"""Drift report: compare logged requests with the data a model was trained on.

Checks (each a two-sample test with a p-value *and* an effect-size floor, so a huge log does not
flag trivial differences); each stores what its reference and request values are and their unit:

* ``text_length`` — mean characters per text; Kolmogorov-Smirnov on the lengths.
* ``oov_rate`` — share of words never seen in the training split, against the same share on the
  validation split (chi-square on in/out counts + a floor in percentage points).
* ``label_mix`` — share of texts predicted as the label whose share moved most; chi-square on
  the label counts + a floor in percentage points.
* ``confidence`` — mean calibrated probability of the predicted label; Kolmogorov-Smirnov.
* ``embedding_mmd`` — MMD² between mean-pooled backbone embeddings, permutation test (no
  reference value: the statistic is the measure).

Both sides are scored by the same torch model in one pass, so the label/confidence checks compare
like with like whatever backend served the requests. Writes ``drift.json``, a self-contained
``drift.html`` and ``drift.prom`` (Prometheus textfile format).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_json, write_text_atomic
from sentiment_hf.monitoring.config import DriftConfig
from sentiment_hf.monitoring.html import render_html
from sentiment_hf.monitoring.report import DriftCheck, DriftReport, DriftThresholds
from sentiment_hf.monitoring.scoring import EmbeddingScorer
from sentiment_hf.monitoring.stats import chi2_test, ks_test, mmd_permutation_test
from sentiment_hf.rundir import RunDir
from sentiment_hf.serve.requestlog import read_requests

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """``24h`` / ``7d`` / ``30m`` (ago) or an ISO date-time (UTC when no zone) → epoch seconds."""
    if value is None:
        return None
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return (now or time.time()) - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SentimentError(
            f"--since {value!r} is neither a duration (30m, 24h, 7d) nor an ISO date-time "
            "(2025-01-31 or 2025-01-31T12:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def words(text: str) -> list[str]:
    """Lower-cased word tokens used for the vocabulary check."""
    return WORD.findall(text.lower())


def oov_counts(texts: list[str], vocab: set[str]) -> tuple[int, int]:
    """(words not in ``vocab``, all words) over ``texts``."""
    out = total = 0
    for text in texts:
        for word in words(text):
            total += 1
            out += word not in vocab
    return out, total


def _reference_data(run: RunDir, data: str | None) -> tuple[list[str], list[str], list[str]]:
    """(train texts, validation texts, label names) of the data the run was trained on."""

    # cut as training cut it (the run's seed), whatever seed drift samples with; other data
    # is cut the same way when it lacks a validation split
    loaded = run.load_splits(("train", "validation"), data, carve=True)
    return (
        list(loaded.splits["train"]["text"]),
        list(loaded.splits["validation"]["text"]),
        loaded.label_names,
    )


#: What the statistic of each kind of test is (printed beside it and stored in drift.json).
KS_STATISTIC = "KS statistic (largest gap between the two cumulative distributions, 0-1)"
CHI2_STATISTIC = "chi-square statistic"
MMD_STATISTIC = "MMD² (0 when the two samples are alike; no unit)"


def _ks_check(
    name: str, description: str, unit: str, ref: np.ndarray, cur: np.ndarray, th: DriftThresholds
) -> DriftCheck:
    res = ks_test(ref, cur)
    return DriftCheck(
        name=name,
        description=description,
        reference=float(np.mean(ref)),
        current=float(np.mean(cur)),
        statistic=res.statistic,
        p_value=res.p_value,
        rule=f"KS p < {th.alpha:g} and KS statistic >= {th.min_ks:g}",
        drifted=res.p_value < th.alpha and res.statistic >= th.min_ks,
        details={
            "reference_median": float(np.median(ref)),
            "current_median": float(np.median(cur)),
        },
        unit=unit,
        statistic_name=KS_STATISTIC,
    )


def _oov_check(
    heldout_texts: list[str], cur_texts: list[str], vocab: set[str], th: DriftThresholds
) -> DriftCheck:
    """The share of words never seen in training: the validation split's against the requests'."""
    ref_oov, ref_words = oov_counts(heldout_texts, vocab)
    cur_oov, cur_words = oov_counts(cur_texts, vocab)
    ref_rate = ref_oov / max(ref_words, 1)
    cur_rate = cur_oov / max(cur_words, 1)
    res = chi2_test(
        np.array([ref_oov, ref_words - ref_oov]), np.array([cur_oov, cur_words - cur_oov])
    )
    return DriftCheck(
        name="oov_rate",
        description="share of words never seen in the training split",
        reference=ref_rate,
        current=cur_rate,
        statistic=res.statistic,
        p_value=res.p_value,
        rule=f"chi-square p < {th.alpha:g} and the share rises by >= "
        f"{100 * th.oov_delta:g} percentage points",
        drifted=res.p_value < th.alpha and cur_rate - ref_rate >= th.oov_delta,
        details={"vocabulary_size": len(vocab), "current_words": cur_words},
        unit="share",
        reference_source="validation split",
        statistic_name=CHI2_STATISTIC,
    )


def _label_mix_check(
    ref_probs: np.ndarray, cur_probs: np.ndarray, labels: list[str], th: DriftThresholds
) -> DriftCheck:
    """The shares of the predicted labels; the check reports the label whose share moved most."""
    k = len(labels)
    ref_counts = np.bincount(ref_probs.argmax(1), minlength=k)
    cur_counts = np.bincount(cur_probs.argmax(1), minlength=k)
    ref_share = ref_counts / ref_counts.sum()
    cur_share = cur_counts / cur_counts.sum()
    moved = int(np.abs(cur_share - ref_share).argmax())
    shift = float(abs(cur_share[moved] - ref_share[moved]))
    res = chi2_test(ref_counts, cur_counts)
    return DriftCheck(
        name="label_mix",
        description=f"share of texts predicted {labels[moved]!r} (the label whose share "
        "moved most)",
        reference=float(ref_share[moved]),
        current=float(cur_share[moved]),
        statistic=res.statistic,
        p_value=res.p_value,
        rule=f"chi-square p < {th.alpha:g} and a label's share moves by >= "
        f"{100 * th.label_shift:g} percentage points",
        drifted=res.p_value < th.alpha and shift >= th.label_shift,
        details={
            "reference_shares": dict(zip(labels, ref_share.round(4).tolist(), strict=True)),
            "current_shares": dict(zip(labels, cur_share.round(4).tolist(), strict=True)),
        },
        unit="share",
        statistic_name=CHI2_STATISTIC,
    )


def _embedding_check(
    ref_emb: np.ndarray,
    cur_emb: np.ndarray,
    th: DriftThresholds,
    embedding_sample: int,
    permutations: int,
    seed: int,
) -> DriftCheck:
    """MMD² between (a seeded sample of) the two sides' embeddings, with a permutation test."""
    rng = np.random.default_rng(seed)
    ri = rng.choice(len(ref_emb), min(embedding_sample, len(ref_emb)), replace=False)
    ci = rng.choice(len(cur_emb), min(embedding_sample, len(cur_emb)), replace=False)
    res = mmd_permutation_test(ref_emb[ri], cur_emb[ci], permutations=permutations, seed=seed)
    return DriftCheck(
        name="embedding_mmd",
        description=f"MMD² between the mean-pooled backbone embeddings of {len(ri)} "
        f"training texts and {len(ci)} requests (Gaussian kernel)",
        reference=0.0,
        current=res.statistic,
        statistic=res.statistic,
        p_value=res.p_value,
        rule=f"permutation p < {th.alpha:g} ({permutations} permutations)",
        drifted=res.p_value < th.alpha,
        details={"reference_n": len(ri), "current_n": len(ci)},
        reference_source=None,
        statistic_name=MMD_STATISTIC,
    )


def run_checks(
    ref_texts: list[str],
    cur_texts: list[str],
    vocab: set[str],
    heldout_texts: list[str],
    scorer: Any,
    labels: list[str],
    thresholds: DriftThresholds,
    embedding_sample: int = 300,
    permutations: int = 500,
    seed: int = 0,
) -> tuple[list[DriftCheck], dict[str, np.ndarray]]:
    """Every drift check on two text samples; also returns the arrays the HTML plots."""
    th = thresholds
    ref_len = np.array([len(t) for t in ref_texts], float)
    cur_len = np.array([len(t) for t in cur_texts], float)
    length = _ks_check(
        "text_length", "mean characters per text", "characters", ref_len, cur_len, th
    )
    oov = _oov_check(heldout_texts, cur_texts, vocab, th)
    ref_probs, ref_emb = scorer(ref_texts, "drift: reference texts")
    cur_probs, cur_emb = scorer(cur_texts, "drift: requests")
    ref_conf, cur_conf = ref_probs.max(1), cur_probs.max(1)
    checks = [
        length,
        oov,
        _label_mix_check(ref_probs, cur_probs, labels, th),
        _ks_check(
            "confidence",
            "mean probability of the predicted label (calibrated, 0-1)",
            "probability",
            ref_conf,
            cur_conf,
            th,
        ),
        _embedding_check(ref_emb, cur_emb, th, embedding_sample, permutations, seed),
    ]
    arrays = {"ref_len": ref_len, "cur_len": cur_len, "ref_conf": ref_conf, "cur_conf": cur_conf}
    return checks, arrays


def _logged_requests(config: DriftConfig) -> list[Any]:
    """The logged requests the report compares (``--since``, at most ``max_requests``); too few
    for a test is an error that says how to get more."""
    since, requests = config.since, config.requests
    rows = read_requests(
        requests,
        since=parse_since(since),
        limit=config.max_requests,
        storage_options=config.storage_options,
    )
    if len(rows) < max(config.min_requests, 2):
        window = f" since {since}" if since else ""
        raise SentimentError(
            f"only {len(rows)} logged request(s){window} in {str(requests)!r}; a drift test "
            f"needs at least {config.min_requests} (wait for more traffic, widen --since or lower "
            "--min-requests)"
        )
    return rows


def _served(rows: list[Any]) -> dict[str, Any]:
    """What the requests were answered with, as the request log recorded it."""
    served_labels: dict[str, int] = {}
    for row in rows:
        served_labels[row.label] = served_labels.get(row.label, 0) + 1
    return {
        "label_counts": served_labels,
        "mean_confidence": round(float(np.mean([row.score for row in rows])), 4),
        "mean_latency_ms": round(float(np.mean([row.latency_ms for row in rows])), 2),
        "backends": sorted({row.backend for row in rows}),
        "model_versions": sorted({row.model_version for row in rows}),
        "first": datetime.fromtimestamp(rows[0].ts, UTC).isoformat(),
        "last": datetime.fromtimestamp(rows[-1].ts, UTC).isoformat(),
    }


def _write_report(report: DriftReport, arrays: dict[str, np.ndarray], out: Path) -> None:
    """drift.json, drift.html and drift.prom in ``out``; their paths go into ``report.paths``."""
    out.mkdir(parents=True, exist_ok=True)
    report.paths = {
        "json": str(out / "drift.json"),
        "html": str(out / "drift.html"),
        "prom": str(out / "drift.prom"),
    }
    write_json(out / "drift.json", report.to_dict())
    write_text_atomic(out / "drift.html", render_html(report, arrays))
    write_prometheus_textfile(report, out / "drift.prom")


def detect_drift(config: DriftConfig) -> DriftReport:
    """Compare the logged requests in ``config.requests`` with the run's training data.

    Writes drift.json, drift.html and drift.prom to ``config.output_dir`` (default
    MODEL_DIR/drift); see :class:`DriftConfig` for the settings.
    """
    run = RunDir.open(config.model_dir)
    model_dir = run.path
    rows = _logged_requests(config)
    train_texts, heldout_texts, _ = _reference_data(run, config.data)
    rng = np.random.default_rng(config.seed)
    pick = rng.choice(len(train_texts), min(config.reference_size, len(train_texts)), replace=False)
    ref_texts = [train_texts[i] for i in sorted(pick)]
    cur_texts = [row.text for row in rows]
    vocab = {w for text in train_texts for w in words(text)}
    # the probabilities the run answers (its policy's, long texts read as it reads them);
    # multi-label: per-label sigmoids, so `confidence` is the highest label probability and
    # `label_mix` the share of each top label
    scorer = EmbeddingScorer(model_dir)
    checks, arrays = run_checks(
        ref_texts,
        cur_texts,
        vocab,
        heldout_texts,
        scorer,
        scorer.labels,
        config.thresholds,
        embedding_sample=config.embedding_sample,
        permutations=config.permutations,
        seed=config.seed,
    )
    report = DriftReport(
        drift_detected=any(c.drifted for c in checks),
        checks=checks,
        n_reference=len(ref_texts),
        n_requests=len(cur_texts),
        model_dir=str(model_dir),
        requests=str(config.requests),
        since=config.since,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        thresholds=config.thresholds,
        served=_served(rows),
    )
    out = config.output_dir if config.output_dir is not None else model_dir / "drift"
    _write_report(report, arrays, out)
    return report


def write_prometheus_textfile(report: DriftReport, path: Path) -> Path:
    """``sentiment_drift_detected`` and per-check gauges in node-exporter textfile format."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    reg = CollectorRegistry()
    Gauge("sentiment_drift_detected", "1 when drift was flagged", registry=reg).set(
        int(report.drift_detected)
    )
    per_check = Gauge(
        "sentiment_drift_check_drifted", "1 when this drift check flagged", ["check"], registry=reg
    )
    p_values = Gauge(
        "sentiment_drift_check_p_value", "p-value of the drift check", ["check"], registry=reg
    )
    for check in report.checks:
        per_check.labels(check.name).set(int(check.drifted))
        p_values.labels(check.name).set(check.p_value)
    Gauge("sentiment_drift_report_timestamp_seconds", "when the report was made", registry=reg).set(
        time.time()
    )
    write_to_textfile(str(path), reg)
    return path
