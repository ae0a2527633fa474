"""Label sets of multi-label data: detecting and parsing them, multi-hot arrays, sigmoids,
per-label calibration and metrics.

A data set is multi-label when ``data.label_columns`` names several 0/1 columns, or when its
label column holds lists of names (a JSON list such as ``["acting", "plot"]`` in CSV, a list in
JSONL or parquet). Either becomes a float multi-hot ``label`` column (one 0.0/1.0 per name, in
``label_names`` order) and the run's ``config.json`` records
``problem_type: multi_label_classification``, so the HF model trains with ``BCEWithLogitsLoss``.

Probabilities are per-label sigmoids, ``sigmoid(scale * logit + bias)``: ``none`` (1, 0),
per-label ``temperature`` (1/T, 0) or per-label ``platt`` (a, b), whichever scores the lowest
cross-validated log loss on the validation split (by at least 1 % over a simpler one). Each
label has its own threshold, tuned on validation for F1 (or balanced accuracy) over
:data:`~sentiment_hf.tasks.policy.THRESHOLD_GRID`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError

MULTI_LABEL = "multi_label_classification"
#: Calibration methods :func:`fit_calibration` compares (simplest first: ties keep it).
CALIBRATION_METHODS = ("none", "temperature", "platt")
CV_FOLDS = 5
#: A more flexible method must lower the cross-validated log loss by this share of the simpler
#: one's to be chosen (a 0.35 % gain, measured on an untrained run, made test ECE worse).
MIN_RELATIVE_GAIN = 0.01
#: Bounds of log(scale) and of the bias searched for each label.
LOG_SCALE_BOUNDS = (-3.0, 3.0)
BIAS_BOUNDS = (-10.0, 10.0)


# ---------------------------------------------------------------------- data
def _looks_like_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (
        isinstance(value, str) and value.lstrip().startswith("[")
    )


def _values(ds: Any, name: str) -> list[Any]:
    """A column as Python values (features decoded), converted in one batch, not row by row."""
    return ds.select_columns([name])[:][name]


def detect_multi_label(dd: Any, cfg: Any) -> bool:
    """True when ``cfg.label_columns`` is set or the label column's first value is a list."""
    if cfg.label_columns:
        return True
    for ds in dd.values():
        if cfg.label_column in ds.column_names and len(ds):
            return _looks_like_list(ds[0][cfg.label_column])
    return False


def parse_label_list(value: Any, where: str) -> list[str]:
    """The label names of one cell: a list, or a JSON list written as a string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise SentimentError(
                f"{where}: label {value!r} is not a JSON list of names; write it like "
                '["acting", "plot"] (or [] for none)'
            ) from None
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SentimentError(
            f"{where}: label {value!r} is not a list of label names; in a multi-label data set "
            'every label cell is a list such as ["acting", "plot"] (or [] for none)'
        )
    return value


def check_label_columns(ds: Any, split: str, cfg: Any) -> None:
    """Every column of ``data.label_columns`` is present in ``ds``."""
    missing = [c for c in cfg.label_columns if c not in ds.column_names]
    if missing:
        raise SentimentError(
            f"{split} split has no column(s) {', '.join(map(repr, missing))} named in "
            f"data.label_columns (columns: {', '.join(ds.column_names)}); fix data.label_columns"
        )


def infer_label_names(dd: Any, cfg: Any) -> list[str]:
    """``data.label_names``, else ``data.label_columns``, else the sorted names in the lists."""
    if cfg.label_columns:
        names = list(cfg.label_columns)
        if cfg.label_names and list(cfg.label_names) != names:
            raise SentimentError(
                f"data.label_names {cfg.label_names} differ from data.label_columns {names}; "
                "with 0/1 columns the column names are the labels: drop data.label_names"
            )
    elif cfg.label_names:
        names = list(cfg.label_names)
    else:
        found: set[str] = set()
        for split, ds in dd.items():
            if cfg.label_column in ds.column_names:
                for row, value in enumerate(_values(ds, cfg.label_column)):
                    found.update(parse_label_list(value, f"{split} row {row}"))
        names = sorted(found)
    if len(set(names)) != len(names) or len(names) < 2:
        raise SentimentError(
            f"a multi-label data set needs at least two distinct label names, got {names}; "
            "fix the label lists or data.label_columns"
        )
    return names


def _column_value(value: Any, where: str) -> float:
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
        return float(value)
    raise SentimentError(
        f"{where}: {value!r} is not 0 or 1; every column of data.label_columns holds 0/1 "
        "(or true/false) per text"
    )


def normalize(ds: Any, split: str, cfg: Any, names: list[str]) -> Any:
    """``ds`` as a string ``text`` and a float multi-hot ``label`` column, validated."""
    from datasets import Dataset, Features, List, Value

    if len(ds) == 0:
        raise SentimentError(f"the {split} split is empty; check data.source and its files")
    texts = _values(ds, cfg.text_column)
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise SentimentError(
                f"{split} row {row}: text is {type(text).__name__}, not a string; clean the data"
            )
    if cfg.label_columns:
        columns = [_values(ds, c) for c in cfg.label_columns]
        hot = [
            [
                _column_value(col[row], f"{split} row {row}, column {c!r}")
                for c, col in zip(cfg.label_columns, columns, strict=True)
            ]
            for row in range(len(ds))
        ]
    else:
        index = {name: i for i, name in enumerate(names)}
        hot = []
        for row, value in enumerate(_values(ds, cfg.label_column)):
            vector = [0.0] * len(names)
            for name in parse_label_list(value, f"{split} row {row}"):
                if name not in index:
                    raise SentimentError(
                        f"{split} row {row}: label {name!r} is outside the declared set "
                        f"{names}; fix the data or set data.label_names"
                    )
                vector[index[name]] = 1.0
            hot.append(vector)
    features = Features({"text": Value("string"), "label": List(Value("float32"))})
    return Dataset.from_dict({"text": texts, "label": hot}, features=features)


def fingerprint_label(label: Any) -> bytes:
    """The bytes ``data.fingerprint`` hashes for one multi-hot label."""
    return b"\x00" + "".join("1" if v >= 0.5 else "0" for v in label).encode() + b"\n"


def multi_hot(labels: Any) -> np.ndarray:
    """Multi-hot rows (floats or bools) as an ``(n, k)`` int array."""
    return (np.asarray(labels, dtype=np.float64) >= 0.5).astype(np.int64)


# ---------------------------------------------------------------------- probabilities
def sigmoid(x: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, numerically stable."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def log_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of ``sigmoid(scores)`` against 0/1 ``labels``."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    loss = labels * np.logaddexp(0.0, -scores) + (1 - labels) * np.logaddexp(0.0, scores)
    return float(np.mean(loss))


def _fit_one(z: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    """(scale, bias) of one label minimising its log loss."""
    from scipy.optimize import minimize, minimize_scalar

    if method == "none":
        return 1.0, 0.0
    if method == "temperature":
        found = minimize_scalar(
            lambda u: log_loss(np.exp(u) * z, y), bounds=LOG_SCALE_BOUNDS, method="bounded"
        )
        return float(np.exp(found.x)), 0.0
    found = minimize(
        lambda p: log_loss(np.exp(p[0]) * z + p[1], y),
        x0=np.zeros(2),
        method="L-BFGS-B",
        bounds=[LOG_SCALE_BOUNDS, BIAS_BOUNDS],
    )
    return float(np.exp(found.x[0])), float(found.x[1])


def fit_params(logits: np.ndarray, labels: np.ndarray, method: str) -> tuple[list, list]:
    """Per-label (scales, biases) of ``method`` fitted on ``logits`` / multi-hot ``labels``."""
    pairs = [_fit_one(logits[:, j], labels[:, j], method) for j in range(logits.shape[1])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def calibrated(logits: np.ndarray, scales: list | None, biases: list | None) -> np.ndarray:
    """``sigmoid(scale * logit + bias)`` per label (identity parameters when None)."""
    logits = np.asarray(logits, dtype=np.float64)
    scale = np.ones(logits.shape[1]) if scales is None else np.asarray(scales)
    bias = np.zeros(logits.shape[1]) if biases is None else np.asarray(biases)
    return sigmoid(logits * scale + bias)


def fit_calibration(
    logits: np.ndarray, labels: np.ndarray, seed: int = 0
) -> tuple[str, list[float], list[float], dict[str, float]]:
    """The method of :data:`CALIBRATION_METHODS` with the lowest :data:`CV_FOLDS`-fold
    cross-validated log loss on (validation) ``logits``, refitted on all of them. A more
    flexible method replaces a simpler one only when it gains :data:`MIN_RELATIVE_GAIN`.

    Returns (method, scales, biases, cross-validated log loss of every method).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = multi_hot(labels)
    folds = np.array_split(np.random.default_rng(seed).permutation(len(logits)), CV_FOLDS)
    scores: dict[str, float] = {}
    for method in CALIBRATION_METHODS:
        losses = []
        for held in folds:
            if len(held) == 0:
                continue
            fit = np.setdiff1d(np.arange(len(logits)), held)
            scales, biases = fit_params(logits[fit], labels[fit], method)
            z = logits[held] * np.asarray(scales) + np.asarray(biases)
            losses.append(log_loss(z, labels[held]) * len(held))
        scores[method] = float(sum(losses) / len(logits))
    best = CALIBRATION_METHODS[0]
    for method in CALIBRATION_METHODS[1:]:
        if scores[method] < scores[best] * (1 - MIN_RELATIVE_GAIN):
            best = method
    scales, biases = fit_params(logits, labels, best)
    return best, scales, biases, scores


def as_binary(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (text, label) pair as one binary decision: ``(n*k, 2)`` probabilities, ``(n*k,)``
    labels, so the single-label calibration measures (NLL, Brier, ECE) apply unchanged."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    return np.stack([1 - p, p], axis=1), multi_hot(labels).reshape(-1)


# ---------------------------------------------------------------------- metrics
def multilabel_metrics(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    """Subset accuracy (``accuracy``), micro and macro precision / recall / F1, Hamming loss.

    ``f1``, ``precision`` and ``recall`` are the micro averages (every decision counts once).
    """
    from sklearn.metrics import precision_recall_fscore_support

    y, p = multi_hot(labels), multi_hot(preds)
    out = {"accuracy": float((y == p).all(axis=1).mean())}
    for average in ("micro", "macro"):
        pr, rc, f1, _ = precision_recall_fscore_support(y, p, average=average, zero_division=0)
        out.update(
            {
                f"precision_{average}": float(pr),
                f"recall_{average}": float(rc),
                f"f1_{average}": float(f1),
            }
        )
    out.update(
        f1=out["f1_micro"],
        precision=out["precision_micro"],
        recall=out["recall_micro"],
        hamming_loss=float((y != p).mean()),
    )
    return out


def per_label_metrics(
    labels: np.ndarray, preds: np.ndarray, names: list[str]
) -> dict[str, dict[str, float]]:
    """Per label: precision, recall, F1, support (texts with it) and its 2x2 confusion counts."""
    y, p = multi_hot(labels), multi_hot(preds)
    out = {}
    for j, name in enumerate(names):
        tp = int(((p[:, j] == 1) & (y[:, j] == 1)).sum())
        fp = int(((p[:, j] == 1) & (y[:, j] == 0)).sum())
        fn = int(((p[:, j] == 0) & (y[:, j] == 1)).sum())
        tn = int(len(y) - tp - fp - fn)
        out[name] = {
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
            "support": tp + fn,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
        }
    return out


def fast_metric(name: str) -> Any:
    """``accuracy`` (subset), ``f1`` (micro) or ``f1_macro`` on multi-hot int arrays, for the
    bootstrap (rows are resampled, so both arguments are ``(n, k)``)."""

    def accuracy(y: np.ndarray, p: np.ndarray) -> float:
        return float((y == p).all(axis=1).mean())

    def f1(y: np.ndarray, p: np.ndarray) -> float:
        tp, wrong = np.sum((y == 1) & (p == 1)), np.sum(y != p)
        return float(2 * tp / (2 * tp + wrong)) if tp + wrong else 0.0

    def f1_macro(y: np.ndarray, p: np.ndarray) -> float:
        tp, wrong = ((y == 1) & (p == 1)).sum(axis=0), (y != p).sum(axis=0)
        denom = 2 * tp + wrong
        return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))

    return {"accuracy": accuracy, "f1": f1, "f1_macro": f1_macro}[name]
