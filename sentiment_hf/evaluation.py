"""Evaluate a trained model directory on a split: metrics JSON, confusion matrix PNG, errors CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.data import load_splits
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_json
from sentiment_hf.metrics import classification_metrics, confusion
from sentiment_hf.predict import Predictor, check_model_dir
from sentiment_hf.recipe import DataConfig, read_recipe_file, recipe_from_dict

SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


@dataclass
class EvalReport:
    """Metrics of one evaluation and the files written for it."""

    split: str
    metrics: dict[str, float]
    metrics_path: Path
    confusion_path: Path
    errors_path: Path


def run_data_config(model_dir: Path, data: str | None) -> DataConfig:
    """The data config a run was trained on (``data`` replaces its source), unlimited."""
    recipe_path = model_dir / "recipe.yaml"
    if recipe_path.is_file():
        cfg = recipe_from_dict(read_recipe_file(recipe_path)).data
    elif data is None:
        raise SentimentError(
            f"{str(model_dir)!r} has no recipe.yaml to say which data it was trained on; "
            "pass --data PATH"
        )
    else:
        cfg = DataConfig()
    if data is not None:
        cfg.source = data
    cfg.max_train_samples = cfg.max_eval_samples = cfg.max_test_samples = None
    return cfg


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    """Save a labelled confusion-matrix heat map as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2 + 0.4 * len(labels), 3 + 0.4 * len(labels)), dpi=120)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = matrix.max() or 1
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > peak / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate_model(
    model_dir: str | Path,
    split: str = "test",
    data: str | None = None,
    output_dir: str | Path | None = None,
    batch_size: int = 64,
    backend: str = "torch",
) -> EvalReport:
    """Evaluate ``model_dir`` on ``split`` of its recipe's data (or ``data``) and write reports.

    Files go to ``output_dir`` (default ``MODEL_DIR/eval``): ``{split}_metrics.json``,
    ``{split}_confusion.png`` and ``{split}_misclassified.csv``.
    """
    model_dir = check_model_dir(model_dir)
    split = SPLIT_ALIASES.get(split, split)
    if split not in ("train", "validation", "test"):
        raise SentimentError(f"unknown split {split!r}; use train, validation or test")
    predictor = Predictor(model_dir, backend=backend, batch_size=batch_size)
    cfg = run_data_config(model_dir, data)
    cfg.label_names = predictor.labels
    dataset = load_splits(cfg, splits=(split,)).splits[split]
    texts, labels = dataset["text"], np.asarray(dataset["label"])
    probs = predictor.predict_proba(texts)
    preds = probs.argmax(axis=-1)
    n = len(predictor.labels)
    metrics: dict[str, Any] = classification_metrics(labels, preds, n)
    metrics = {f"{split}_{k}": v for k, v in metrics.items()}
    metrics[f"{split}_samples"] = len(texts)
    out = Path(output_dir) if output_dir else model_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = write_json(out / f"{split}_metrics.json", {**metrics, "data_source": cfg.source})
    confusion_path = plot_confusion(
        confusion(labels, preds, n),
        predictor.labels,
        out / f"{split}_confusion.png",
        f"{model_dir.name}: {split} (acc {metrics[f'{split}_accuracy']:.3f})",
    )
    errors_path = out / f"{split}_misclassified.csv"
    with open(errors_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "text", "label", "predicted", "score"])
        for i in np.flatnonzero(preds != labels):
            writer.writerow(
                [
                    int(i),
                    texts[i],
                    predictor.labels[labels[i]],
                    predictor.labels[preds[i]],
                    f"{probs[i, preds[i]]:.4f}",
                ]
            )
    return EvalReport(split, metrics, metrics_path, confusion_path, errors_path)
