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
    """Examples per class, keyed by label name, in class-index order."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}


def imbalance_ratio(counts: Mapping[str, int]) -> float:
    """``max count / min count`` (``inf`` when a class has no example; 1.0 when all are empty)."""
    values = list(counts.values())
    if not values or max(values) == 0:
        return 1.0
    return math.inf if min(values) == 0 else max(values) / min(values)


def is_unbalanced(*counts: Mapping[str, int] | None) -> bool:
    """True when any of the given class counts has an imbalance ratio >= :data:`UNBALANCED_RATIO`."""
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
    """The recipe's ``class_weights`` checked for shape: None, ``auto`` or ``{label: weight > 0}``."""
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
