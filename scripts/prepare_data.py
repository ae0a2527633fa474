"""DVC `prepare` stage: validate the raw data and write the three splits as JSONL.

    python scripts/prepare_data.py RAW_SOURCE OUT_DIR [--recipe recipes/pipeline.yaml]

RAW_SOURCE is anything ``data.source`` accepts (the raw rt-polarity folder here); the recipe's
column names and label names apply, its sample limits do not (training applies them). Each
OUT_DIR/{train,validation,test}.jsonl row is ``{"text": ..., "label": NAME}``, which
``data.source=OUT_DIR`` reads back with the same label order.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from sentiment_hf.config.recipe import load_recipe
from sentiment_hf.data.load import SPLITS, load_splits
from sentiment_hf.errors import SentimentError


def prepare(source: str, out_dir: Path, recipe_path: Path) -> dict[str, int]:
    """Write the validated splits of ``source`` to ``out_dir``; returns the row counts."""
    recipe = load_recipe(recipe_path)
    cfg = replace(
        recipe.data,
        source=source,
        max_train_samples=None,
        max_eval_samples=None,
        max_test_samples=None,
    )
    data = load_splits(cfg, seed=recipe.training.get("seed", 42))
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        ds = data.splits[split]
        path = out_dir / f"{split}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for text, label in zip(ds["text"], ds["label"], strict=True):
                row = {"text": text, "label": data.label_names[label]}
                handle.write(json.dumps(row) + "\n")  # ASCII-only: no raw U+0085 to split on
        counts[split] = len(ds)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; one-line errors and exit code 2 for bad input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="raw data source, e.g. datasets/rt-polarity")
    parser.add_argument("out_dir", type=Path, help="folder for {train,validation,test}.jsonl")
    parser.add_argument("--recipe", type=Path, default=Path("recipes/pipeline.yaml"))
    args = parser.parse_args(argv)
    try:
        counts = prepare(args.source, args.out_dir, args.recipe)
    except SentimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(", ".join(f"{split}={n}" for split, n in counts.items()), f"-> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
