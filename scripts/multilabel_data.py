"""Build a multi-label data set from the real rt-polarity sentences with fixed keyword rules.

    python scripts/multilabel_data.py RT_DIR OUT_DIR [--per-split N] [--format jsonl|columns]

Each sentence keeps its rt-polarity split (8,530 / 1,066 / 1,066) and gets every label whose
rule matches: ``positive`` (it comes from ``rt-polarity.pos``), ``mentions_acting``,
``mentions_plot`` and ``mentions_humor`` (a whole-word keyword of :data:`RULES`, lower-cased).
``jsonl`` writes ``{"text": ..., "labels": [names]}`` rows (``data.label_column=labels``);
``columns`` writes CSV with one 0/1 column per label (``data.label_columns=[...]``).
``--per-split N`` keeps N seeded-random sentences of each split (the tests use a few dozen).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path

from sentiment_hf.data.load import SPLITS, read_rt_polarity

RULES: dict[str, re.Pattern[str]] = {
    "mentions_acting": re.compile(
        r"\b(act|acting|actor|actors|actress|actresses|performance|performances|cast|played)\b"
    ),
    "mentions_plot": re.compile(
        r"\b(plot|plots|story|stories|storyline|script|screenplay|narrative)\b"
    ),
    "mentions_humor": re.compile(
        r"\b(funny|comedy|comedies|humor|humour|laugh|laughs|jokes|hilarious|comic)\b"
    ),
}
LABELS = ["positive", *RULES]


def labels_of(text: str, positive: bool) -> list[str]:
    """The label names of one sentence, in :data:`LABELS` order."""
    lowered = text.lower()
    found = [name for name, rule in RULES.items() if rule.search(lowered)]
    return (["positive"] if positive else []) + found


def build(rt_dir: Path, per_split: int | None = None, seed: int = 0) -> dict[str, list[dict]]:
    """``{split: [{"text", "labels"}, ...]}`` from the raw Cornell files."""
    raw = read_rt_polarity(rt_dir)
    out = {}
    for split in SPLITS:
        rows = [
            {"text": text, "labels": labels_of(text, label == 1)}
            for text, label in zip(raw[split]["text"], raw[split]["label"], strict=True)
        ]
        if per_split is not None:
            rows = random.Random(seed).sample(rows, per_split)
        out[split] = rows
    return out


def write(splits: dict[str, list[dict]], out_dir: Path, fmt: str = "jsonl") -> list[Path]:
    """Write ``splits`` as ``{split}.jsonl`` (label lists) or ``{split}.csv`` (0/1 columns)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, rows in splits.items():
        if fmt == "jsonl":
            path = out_dir / f"{split}.jsonl"
            with open(path, "w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row) + "\n")
        else:
            path = out_dir / f"{split}.csv"
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["text", *LABELS])
                for row in rows:
                    writer.writerow([row["text"], *(int(n in row["labels"]) for n in LABELS)])
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rt_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--per-split", type=int, default=None)
    parser.add_argument("--format", choices=("jsonl", "columns"), default="jsonl")
    args = parser.parse_args()
    splits = build(args.rt_dir, args.per_split)
    for path in write(splits, args.out_dir, args.format):
        print(path)
    for split, rows in splits.items():
        counts = {n: sum(n in r["labels"] for r in rows) for n in LABELS}
        print(split, len(rows), counts)


if __name__ == "__main__":
    main()
