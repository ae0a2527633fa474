"""Class balance: counts and shares per class, the imbalance ratio, and ``auto`` class weights.

A split is **unbalanced** when its largest class share is at least
:data:`UNBALANCED_RATIO` times its smallest (``max share / min share``; an empty class counts as
infinitely rare). ``auto`` class weights are the inverse class frequencies of the train split,
normalised so that the average weight over the training examples is 1:
``w_c = N / (K * n_c)`` for ``N`` examples, ``K`` classes and ``n_c`` examples of class ``c``
(scikit-learn's ``class_weight="balanced"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError

#: ``max share / min share`` at or above which classes count as unbalanced (eval then leads
#: with macro F1 and per-class recall). 1.5 = a 60/40 binary split.
UNBALANCED_RATIO = 1.5
AUTO = "auto"


def class_counts(labels: Sequence[int] | np.ndarray, names: Sequence[str]) -> dict[str, int]:
    """Examples per class, keyed by label name, in class-index order (multi-hot rows: examples
    carrying each label)."""
    arr = np.asarray(labels)
    if arr.ndim == 2:
        counts = (arr > 0.5).sum(axis=0)
    else:
        counts = np.bincount(arr.astype(np.int64), minlength=len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}


def imbalance_ratio(counts: Mapping[str, int]) -> float:
    """``max count / min count`` (``inf`` when a class has no example; 1.0 when all are empty)."""
    values = list(counts.values())
    if not values or max(values) == 0:
        return 1.0
    return math.inf if min(values) == 0 else max(values) / min(values)


def is_unbalanced(*counts: Mapping[str, int] | None) -> bool:
    """True when any of the class counts given has a ratio >= :data:`UNBALANCED_RATIO`."""
    return any(c and imbalance_ratio(c) >= UNBALANCED_RATIO for c in counts)


def auto_class_weights(counts: Mapping[str, int]) -> dict[str, float]:
    """Inverse-frequency weights ``N / (K * n_c)``; a class with no train example is an error."""
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        raise SentimentError(
            f"training.class_weights=auto: class {missing[0]!r} has no train example, so it has "
            "no frequency to invert; add examples of it or give explicit weights"
        )
    total, k = sum(counts.values()), len(counts)
    return {name: total / (k * n) for name, n in counts.items()}


def check_class_weights(value: Any, where: str = "training.class_weights") -> Any:
    """The recipe's ``class_weights`` checked: None, ``auto`` or ``{label: weight > 0}``."""
    if value is None or value == AUTO:
        return value
    if not isinstance(value, dict) or not value:
        raise SentimentError(
            f"{where}: expected 'auto' or a mapping of label name to a positive weight, "
            f"e.g. {{neg: 1.0, pos: 5.0}}; got {value!r}"
        )
    out: dict[str, float] = {}
    for label, weight in value.items():
        ok = isinstance(weight, (int, float)) and not isinstance(weight, bool)
        if not ok or not math.isfinite(weight) or weight <= 0:
            raise SentimentError(
                f"{where}.{label}: a class weight must be a positive number, got {weight!r}"
            )
        out[str(label)] = float(weight)
    return out


def resolve_class_weights(
    spec: Any, counts: Mapping[str, int], where: str = "training.class_weights"
) -> dict[str, float] | None:
    """The weight of every class (label name → weight) a run trains with, or None (unweighted).

    ``auto`` uses :func:`auto_class_weights` of the train ``counts``; a mapping names some or all
    labels, the others keep weight 1.0. A name that is not a label is an error.
    """
    spec = check_class_weights(spec, where)
    if spec is None:
        return None
    if spec == AUTO:
        return auto_class_weights(counts)
    unknown = [label for label in spec if label not in counts]
    if unknown:
        raise SentimentError(
            f"{where}: {unknown[0]!r} is not a label of this data; the labels are "
            f"{', '.join(counts)}"
        )
    return {name: spec.get(name, 1.0) for name in counts}


def balance_metrics(
    split: str,
    counts: Mapping[str, int],
    per_class: Mapping[str, Mapping[str, float]],
    train_counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The evaluated split's class counts, imbalance ratios and per-class recall, prefixed.

    ``{split}_unbalanced`` is true when the evaluated split or the run's train split (from the
    manifest) is unbalanced; ``{split}_imbalance_ratio`` is null when a class has no example.
    """

    def finite(ratio: float) -> float | None:
        return None if math.isinf(ratio) else round(ratio, 4)

    out: dict[str, Any] = {
        f"{split}_unbalanced": is_unbalanced(counts, train_counts),
        f"{split}_recall_per_class": {name: row["recall"] for name, row in per_class.items()},
        f"{split}_class_counts": dict(counts),
        f"{split}_imbalance_ratio": finite(imbalance_ratio(counts)),
    }
    if train_counts:
        out["train_class_counts"] = dict(train_counts)
        out["train_imbalance_ratio"] = finite(imbalance_ratio(train_counts))
    return out


def lead_keys(split: str, unbalanced: bool) -> tuple[str, ...]:
    """The metric keys a report shows first: macro F1 and per-class recall when unbalanced."""
    if unbalanced:
        return (f"{split}_f1_macro", f"{split}_recall_per_class", f"{split}_accuracy")
    return (f"{split}_accuracy", f"{split}_f1_macro")


def order_metrics(metrics: Mapping[str, Any], split: str) -> dict[str, Any]:
    """``metrics`` with :func:`lead_keys` first (then the rest in their order)."""
    lead = [k for k in lead_keys(split, bool(metrics.get(f"{split}_unbalanced"))) if k in metrics]
    return {**{k: metrics[k] for k in lead}, **{k: v for k, v in metrics.items() if k not in lead}}


def summary_line(metrics: Mapping[str, Any], split: str) -> str:
    """One line for the terminal: macro F1 and per-class recall first when unbalanced."""
    if metrics.get(f"{split}_unbalanced"):
        recalls = metrics.get(f"{split}_recall_per_class", {})
        per = ", ".join(f"{name} {value:.4f}" for name, value in recalls.items())
        ratios = {"train": metrics.get("train_imbalance_ratio", 1.0)}
        ratios[split] = metrics.get(f"{split}_imbalance_ratio")
        why = ", ".join(
            f"{name} {'inf' if r is None else f'{r:.1f}'}" for name, r in ratios.items()
        )
        return (
            f"{split}: macro F1 {metrics[f'{split}_f1_macro']:.4f}; recall per class: {per}; "
            f"accuracy {metrics[f'{split}_accuracy']:.4f} "
            f"(classes unbalanced, max/min class share: {why})"
        )
    return (
        f"{split}: accuracy {metrics[f'{split}_accuracy']:.4f}, "
        f"macro F1 {metrics[f'{split}_f1_macro']:.4f}"
    )
