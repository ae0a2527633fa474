"""The data check: duplicates and leakage, conflicting labels, bad texts, label balance and
token lengths of every split, before anyone trains on them.

Errors (``sentiment data check`` exits 1; ``sentiment train`` stops unless ``data.check`` is
``warn`` or ``skip``) are findings that make training or its test figures wrong:

* ``empty_text`` — a text that is empty, whitespace only, or not a string (an empty cell);
* ``missing_label`` — a row without a label;
* ``leakage`` — the exact same text in train and in validation/test (or in validation and test);
* ``conflicting_labels`` — the exact same text with two different labels.

Warnings name what deserves a look but can be legitimate: duplicates within a split, texts equal
after normalisation (casefold, punctuation and whitespace removed) across splits or with other
labels, a class missing from a split, a minority class under 10 % of train, and inputs longer
than ``max_length`` tokens (the share truncated).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ERROR, WARNING = "error", "warning"
#: How many example texts a finding keeps.
EXAMPLES = 3
#: Percentiles of the token lengths reported per split.
PERCENTILES = (50, 90, 95, 99)
#: Train share under which the rarest class is flagged as imbalanced.
MINORITY_SHARE = 0.10
#: Share of a split longer than ``max_length`` from which truncation is a warning.
TRUNCATION_WARN = 0.05
#: Evaluated splits: a text of train found in one of these leaks.
HELD_OUT = ("validation", "test")
_PUNCT = re.compile(r"[^\w\s]|_")


@dataclass
class Finding:
    """One problem: severity, a code, a sentence saying what and where, a few examples."""

    severity: str
    code: str
    message: str
    count: int
    examples: list[str] = field(default_factory=list)


@dataclass
class SplitStats:
    """Rows, label counts and token lengths of one split."""

    rows: int
    labels: dict[str, int]
    tokens: dict[str, float]  # p50 / p90 / p95 / p99 / max
    truncated: int
    truncated_share: float


@dataclass
class DataReport:
    """What :func:`check_splits` found."""

    source: str
    max_length: int
    tokenizer: str
    splits: dict[str, SplitStats]
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        """The findings that stop training."""
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        """The findings worth a look."""
        return [f for f in self.findings if f.severity == WARNING]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        return {
            **asdict(self),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
        }

    def summary(self) -> str:
        """One line: the errors (or warnings) by message."""
        chosen = self.errors or self.warnings
        return "; ".join(f.message for f in chosen) or "no problems found"


def normalize_text(text: str) -> str:
    """The text compared for near-duplicates: NFKC, casefolded, punctuation and extra
    whitespace removed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


def _label_key(label: Any) -> Any:
    return tuple(sorted(map(str, label))) if isinstance(label, (list, tuple)) else label


def _label_name(label: Any, names: Sequence[str] | None) -> str:
    if names is not None and isinstance(label, int) and 0 <= label < len(names):
        return names[label]
    return str(label)


def _short(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _token_lengths(texts: list[str], tokenizer: Any) -> np.ndarray:
    if not texts:
        return np.zeros(0, dtype=int)
    ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return np.array([len(x) for x in ids])


def _text_findings(split: str, texts: list[Any], labels: list[Any]) -> list[Finding]:
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    missing = [i for i, label in enumerate(labels) if label is None]
    out = []
    if bad:
        out.append(
            Finding(
                ERROR,
                "empty_text",
                f"{len(bad)} {split} text(s) empty, whitespace or not a string (rows "
                f"{', '.join(map(str, bad[:5]))}{'…' if len(bad) > 5 else ''}); drop or fill them",
                len(bad),
                [repr(texts[i]) for i in bad[:EXAMPLES]],
            )
        )
    if missing:
        out.append(
            Finding(
                ERROR,
                "missing_label",
                f"{len(missing)} {split} row(s) without a label (rows "
                f"{', '.join(map(str, missing[:5]))}); label or drop them",
                len(missing),
            )
        )
    return out


Index = dict[str, list[tuple[str, Any, str]]]  # key -> [(split, label key, text)]


def _index(rows: Mapping[str, list[tuple[str, Any]]], exact: bool) -> Index:
    index: Index = defaultdict(list)
    for split, items in rows.items():
        for text, label in items:
            index[text if exact else normalize_text(text)].append((split, _label_key(label), text))
    return index


def _within(index: Index, split: str) -> list[str]:
    """Keys seen more than once in ``split`` (each counted by its extra copies)."""
    return [k for k, hits in index.items() if sum(s == split for s, _, _ in hits) > 1]


def _across(index: Index, held: str, other: str) -> list[str]:
    return [k for k, hits in index.items() if {held, other} <= {s for s, _, _ in hits}]


def _conflicting(index: Index) -> list[str]:
    return [k for k, hits in index.items() if len({lab for _, lab, _ in hits}) > 1]


def _duplicate_findings(
    rows: Mapping[str, list[tuple[str, Any]]], names: Sequence[str] | None
) -> list[Finding]:
    """Within-split duplicates, cross-split leakage and conflicting labels; a normalised match
    is reported only where no exact one already explains it."""
    exact, near = _index(rows, True), _index(rows, False)
    out: list[Finding] = []

    def add(
        severity: str, code: str, message: str, keys: list[str], index: Index, count: int = 0
    ) -> None:
        if keys:
            examples = [_short(index[k][0][2]) for k in keys[:EXAMPLES]]
            if code.endswith("conflicting_labels"):
                examples = [
                    f"{e} -> {'/'.join(sorted({_label_name(x, names) for _, x, _ in index[k]}))}"
                    for e, k in zip(examples, keys, strict=False)
                ]
            n = count or len(keys)
            out.append(Finding(severity, code, message.format(n=n), n, examples))

    for split in rows:
        dupes = _within(exact, split)
        seen = {normalize_text(k) for k in dupes}
        extra = sum(sum(s == split for s, _, _ in exact[k]) - 1 for k in dupes)
        message = f"{{n}} exact duplicate(s) within {split} (extra copies)"
        add(WARNING, "duplicate", message, dupes, exact, count=extra)
        near_dupes = [k for k in _within(near, split) if k not in seen]
        add(
            WARNING,
            "near_duplicate",
            f"{{n}} normalised duplicate(s) within {split}",
            near_dupes,
            near,
        )
    for held in HELD_OUT:
        for other in ("train", "validation"):
            if other == held or held not in rows or other not in rows:
                continue
            leaked = _across(exact, held, other)
            add(
                ERROR,
                "leakage",
                f"{{n}} {held} text(s) also in {other}: the {held} figures overstate the model; "
                "remove them from one side",
                leaked,
                exact,
            )
            seen = {normalize_text(k) for k in leaked}
            add(
                WARNING,
                "near_leakage",
                f"{{n}} {held} text(s) match {other} once normalised (case, punctuation, spaces)",
                [k for k in _across(near, held, other) if k not in seen],
                near,
            )
    conflicts = _conflicting(exact)
    add(
        ERROR,
        "conflicting_labels",
        "{n} text(s) carry conflicting labels; fix the labels or drop the rows",
        conflicts,
        exact,
    )
    seen = {normalize_text(k) for k in conflicts}
    add(
        WARNING,
        "near_conflicting_labels",
        "{n} text(s) carry conflicting labels once normalised",
        [k for k in _conflicting(near) if k not in seen],
        near,
    )
    return out


def _balance_findings(stats: dict[str, SplitStats]) -> list[Finding]:
    out = []
    if "train" not in stats:
        return out
    train = stats["train"].labels
    total = sum(train.values())
    for split, s in stats.items():
        absent = [name for name in train if s.labels.get(name, 0) == 0]
        if absent and split != "train":
            out.append(
                Finding(
                    WARNING,
                    "class_missing",
                    f"{split} has no example of {', '.join(absent)}: its per-class figures are "
                    "undefined",
                    len(absent),
                )
            )
    if total and len(train) > 1:
        rarest, count = min(train.items(), key=lambda kv: kv[1])
        if count / total < MINORITY_SHARE:
            out.append(
                Finding(
                    WARNING,
                    "imbalance",
                    f"class {rarest!r} is {count / total:.1%} of train: look at macro F1 and "
                    "per-class recall, consider class weights",
                    count,
                )
            )
    return out


def check_splits(
    splits: Mapping[str, tuple[Sequence[Any], Sequence[Any]]],
    tokenizer: Any,
    max_length: int,
    label_names: Sequence[str] | None = None,
    source: str = "",
) -> DataReport:
    """Check ``{split: (texts, labels)}``; labels are names, or indices into ``label_names``.

    Texts may be anything a file held (None for an empty cell): non-strings are findings.
    """
    findings: list[Finding] = []
    stats: dict[str, SplitStats] = {}
    rows: dict[str, list[tuple[str, Any]]] = {}
    for split, (texts, labels) in splits.items():
        texts, labels = list(texts), list(labels)
        findings += _text_findings(split, texts, labels)
        good = [
            (t, lab)
            for t, lab in zip(texts, labels, strict=True)
            if isinstance(t, str) and t.strip()
        ]
        rows[split] = [(t, lab) for t, lab in good if lab is not None]
        lengths = _token_lengths([t for t, _ in good], tokenizer)
        counts: Counter[str] = Counter()
        for label in labels:
            if isinstance(label, (list, tuple)):
                counts.update(map(str, label))
            elif label is not None:
                counts[_label_name(label, label_names)] += 1
        truncated = int((lengths > max_length).sum())
        stats[split] = SplitStats(
            rows=len(texts),
            labels=dict(sorted(counts.items())),
            tokens={
                **{
                    f"p{q}": float(np.percentile(lengths, q)) if len(lengths) else 0.0
                    for q in PERCENTILES
                },
                "max": float(lengths.max()) if len(lengths) else 0.0,
            },
            truncated=truncated,
            truncated_share=truncated / len(lengths) if len(lengths) else 0.0,
        )
        if stats[split].truncated_share > TRUNCATION_WARN:
            findings.append(
                Finding(
                    WARNING,
                    "truncation",
                    f"{stats[split].truncated_share:.1%} of {split} is longer than max_length "
                    f"{max_length} tokens and loses its end; raise model.max_length or read long "
                    "texts in windows",
                    truncated,
                )
            )
    findings += _duplicate_findings(rows, label_names)
    findings += _balance_findings(stats)
    name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    findings.sort(key=lambda f: f.severity != ERROR)
    return DataReport(source, max_length, str(name), stats, findings)
