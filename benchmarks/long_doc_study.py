"""Long documents, the levers of a document decision: which rule over a review's windows reads
it best, measured on a tuning half and reported on a test half that no choice looked at.

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/long_doc_study.py RUN_DIR \\
        --data ../shared/data/imdb-reviews/reviews.csv --windows 64 128 256 --out study/
    uv run python benchmarks/long_doc_study.py RUN_DIR --data ... --write-halves imdb-halves/

The reviews are cut once into a tuning and a test half (seeded, stratified). For each window
length the run's :class:`sentiment_hf.Predictor` reads every review in windows (its tokenizer,
windows and length-sorted batches; ``max_windows`` raised so nothing is capped) and returns the
logits of every window (:meth:`~sentiment_hf.Predictor.window_logits`), timed as texts/s, for
each ``model.long_text.cut`` of ``--cuts`` (windows of tokens, or of whole sentences). The
window logits are kept (``OUT/windows-LENGTH-CUT.npz``), so every rule below is applied to the
same numbers afterwards:

- ``first`` / ``last``: one window (``first`` is what truncation reads);
- ``mean-logits`` (the shipped rule), ``median-logits``, ``trimmed-logits`` (a fifth cut from
  each end of the windows' logit margins), ``mean-probs`` (the mean of calibrated probabilities);
- ``top3-confident``: the mean of the three windows the model is surest of;
- ``late-weighted``: weights growing linearly with the window's position (verdicts come late);
- ``vote``: the majority of the windows' labels (ties: ``mean-logits``);
- ``fitted-lr``: a logistic regression over per-document window statistics fitted on the tuning
  half only (the lever for a user with labelled long documents; tuning figure cross-validated).

Binary runs only (the margin is ``logit[positive] - logit[negative]``). Prints a Markdown table
(window length, rule, tuning and test accuracy, texts/s) and writes it with the raw figures to
``OUT/study.json``.
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf import Predictor
from sentiment_hf.fileio import write_json
from sentiment_hf.hardware import device_info
from sentiment_hf.longtext import LongTextConfig

#: Share of the tuning half that ``--write-halves`` keeps for validation.
VALIDATION_SHARE = 0.2
TRIM = 0.2


def read_reviews(path: Path, text: str, label: str) -> tuple[list[str], np.ndarray]:
    """Texts and 0/1 labels (1: positive) of a CSV of reviews."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r[text] for r in rows], np.array([int(r[label] == "positive") for r in rows])


def halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the tuning and the test half, stratified by label, seeded."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    tune, test = train_test_split(index, test_size=0.5, stratify=labels, random_state=seed)
    return np.sort(tune), np.sort(test)


def write_halves(
    path: Path, out: Path, tune: np.ndarray, test: np.ndarray, labels: np.ndarray, seed: int
) -> None:
    """The tuning half as ``train.csv`` / ``validation.csv`` (stratified, seeded) and the test
    half as ``test.csv``, rows as in ``path``: a data folder for ``sentiment train``."""
    from sklearn.model_selection import train_test_split

    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    train, validation = train_test_split(
        tune, test_size=VALIDATION_SHARE, stratify=labels[tune], random_state=seed
    )
    out.mkdir(parents=True, exist_ok=True)
    for split, index in (("train", train), ("validation", validation), ("test", test)):
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows[i] for i in sorted(index))


def window_margins(
    run: Path, texts: list[str], length: int, cut: str, batch_size: int
) -> tuple[list[np.ndarray], float, float]:
    """Per text, the margin (positive minus negative logit) of each window in reading order;
    texts/s of reading them; the run's temperature."""
    predictor = Predictor(run, batch_size=batch_size, max_length=length)
    names = [name.lower() for name in predictor.labels]
    pos, neg = (next(i for i, n in enumerate(names) if n.startswith(p)) for p in ("pos", "neg"))
    cfg = LongTextConfig(cut=cut, max_windows=10_000)
    started = time.perf_counter()
    logits, owner = predictor.window_logits(texts, long_text=cfg, strict=False)
    rate = len(texts) / (time.perf_counter() - started)
    margins = logits[:, pos] - logits[:, neg]
    per_text = [margins[owner == i] for i in range(len(texts))]
    return per_text, rate, float(getattr(predictor.policy, "temperature", 1.0))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def rules(margins: list[np.ndarray], temperature: float) -> dict[str, np.ndarray]:
    """Each fixed rule's document margin (> 0: positive) for every text."""

    def each(fn: Any) -> np.ndarray:
        return np.array([fn(m) for m in margins])

    def trimmed(m: np.ndarray) -> float:
        cut = int(len(m) * TRIM)
        kept = np.sort(m)[cut : len(m) - cut] if len(m) > 2 * cut else m
        return float(kept.mean())

    def top3(m: np.ndarray) -> float:
        return float(m[np.argsort(-np.abs(m), kind="stable")[:3]].mean())

    def late(m: np.ndarray) -> float:
        weights = np.arange(1, len(m) + 1, dtype=float)
        return float((weights * m).sum() / weights.sum())

    mean = each(np.mean)
    votes = each(lambda m: float(np.sign(m).sum()))
    return {
        "first": each(lambda m: m[0]),
        "last": each(lambda m: m[-1]),
        "mean-logits": mean,
        "median-logits": each(np.median),
        "trimmed-logits": each(trimmed),
        "mean-probs": each(lambda m: _sigmoid(m / temperature).mean() - 0.5),
        "top3-confident": each(top3),
        "late-weighted": each(late),
        "vote": np.where(votes != 0, votes, mean),
    }


def features(margins: list[np.ndarray], temperature: float) -> np.ndarray:
    """Per-document statistics of the window margins a fitted aggregator reads."""
    rows = []
    for m in margins:
        probs = _sigmoid(m / temperature)
        rows.append(
            [
                m.mean(),
                np.median(m),
                m[0],
                m[-1],
                m.max(),
                m.min(),
                m.std(),
                probs.mean(),
                (m > 0).mean(),
                np.log(len(m)),
            ]
        )
    return np.array(rows)


def fitted(
    margins: list[np.ndarray], labels: np.ndarray, tune: np.ndarray, test: np.ndarray, t: float
) -> tuple[float, float]:
    """(cross-validated tuning accuracy, test accuracy) of a logistic regression over
    :func:`features`, its regularisation chosen by 5-fold cross-validation on the tuning half."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = features(margins, t)
    search = LogisticRegressionCV(Cs=10, cv=5, max_iter=2000, scoring="accuracy")
    model = make_pipeline(StandardScaler(), search)
    with warnings.catch_warnings():  # scikit-learn's notices of coming default changes
        warnings.simplefilter("ignore", FutureWarning)
        cv = float(cross_val_score(model, x[tune], labels[tune], cv=5).mean())
        model.fit(x[tune], labels[tune])
    return cv, float((model.predict(x[test]) == labels[test]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--text-column", default="review")
    parser.add_argument("--label-column", default="sentiment")
    parser.add_argument("--windows", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument(
        "--cuts",
        nargs="+",
        default=["sentences", "tokens"],
        choices=["sentences", "tokens"],
        help="model.long_text.cut values to compare",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the tuning/test cut")
    parser.add_argument("--limit", type=int, default=None, help="first N reviews (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("long-doc-study"))
    parser.add_argument(
        "--write-halves",
        type=Path,
        metavar="DIR",
        help="only write the halves as a data folder (train/validation from the tuning half, "
        "test = the test half) for training on long documents, then stop",
    )
    args = parser.parse_args()

    texts, labels = read_reviews(args.data, args.text_column, args.label_column)
    if args.limit:
        texts, labels = texts[: args.limit], labels[: args.limit]
    tune, test = halves(labels, args.seed)
    if args.write_halves:
        write_halves(args.data, args.write_halves, tune, test, labels, args.seed)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    table: list[dict[str, Any]] = []
    for length, cut in ((w, c) for w in args.windows for c in args.cuts):
        margins, rate, temperature = window_margins(args.run, texts, length, cut, args.batch_size)
        np.savez(
            args.out / f"windows-{length}-{cut}.npz",
            margins=np.concatenate(margins),
            counts=np.array([len(m) for m in margins]),
            labels=labels,
        )
        for name, margin in rules(margins, temperature).items():
            right = (margin > 0).astype(int) == labels
            table.append(
                {
                    "window": length,
                    "cut": cut,
                    "rule": name,
                    "tune": float(right[tune].mean()),
                    "test": float(right[test].mean()),
                    "texts_per_s": rate,
                }
            )
        cv, held = fitted(margins, labels, tune, test, temperature)
        table.append(
            {
                "window": length,
                "cut": cut,
                "rule": "fitted-lr",
                "tune": cv,
                "test": held,
                "texts_per_s": rate,
            }
        )
        windows = np.array([len(m) for m in margins])
        print(
            f"window {length}, cut {cut}: {rate:.1f} texts/s, "
            f"windows per review median {np.median(windows):g}"
        )
    print(f"device: {device_info()}")
    print("| window | cut | rule | tuning half | test half | texts/s |\n|---|---|---|---|---|---|")
    for row in table:
        print(
            f"| {row['window']} | {row['cut']} | {row['rule']} | {row['tune'] * 100:.2f} % "
            f"| {row['test'] * 100:.2f} % | {row['texts_per_s']:.1f} |"
        )
    best = max(table, key=lambda r: r["tune"])
    print(
        f"chosen on the tuning half: window {best['window']}, cut {best['cut']}, {best['rule']}: "
        f"test {best['test'] * 100:.2f} %"
    )
    write_json(
        args.out / "study.json",
        {
            "run": str(args.run),
            "data": str(args.data),
            "reviews": len(texts),
            "tune": len(tune),
            "test": len(test),
            "seed": args.seed,
            "device": device_info(),
            "rows": table,
            "chosen_on_tuning": best,
        },
    )


if __name__ == "__main__":
    main()
