"""The model card of a run: YAML metadata from its real metrics, the body from a Jinja template.

The template is ``sentiment_hf/templates/model_card.md``, rendered by :mod:`sentiment_hf.render`
the way ``huggingface_hub.ModelCard.from_template`` renders it, so the metadata block is the
hub's own format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import looks_like_path
from sentiment_hf.imbalance import is_unbalanced
from sentiment_hf.modeling import PACKAGED_BACKBONES
from sentiment_hf.render import render
from sentiment_hf.rundir import EVAL_DIR, METRICS_FILE, RunDir, open_run

RT_DATASET = "cornell-movie-review-data/rotten_tomatoes"
PACKAGED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
SPLITS = ("train", "validation", "test")
NA = "n/a"
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "f1_macro": "Macro F1",
}
#: metrics.json prefix → split name, in the order the card lists them.
METRIC_SPLITS = (("eval", "validation"), ("test", "test"))


def hub_dataset(source: str | None) -> str | None:
    """The hub dataset id a run's ``data.source`` stands for, or None for private local files.

    The raw Cornell rt-polarity directory reproduces the hub's rotten_tomatoes splits exactly.
    """
    if not source:
        return None
    path = Path(source).expanduser()
    if path.is_dir() and (path / "rt-polarity.pos").is_file():
        return RT_DATASET
    return None if looks_like_path(source) else source


def hub_base_model(backbone: str | None) -> str | None:
    """The hub id of the backbone, or None when it was a local folder."""
    if not backbone:
        return None
    if backbone in PACKAGED_BACKBONES:
        return PACKAGED_HUB_ID
    if looks_like_path(backbone):
        return None
    return backbone if backbone.count("/") == 1 else None


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; every cell is written with ``str``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _eval_results(metrics: dict[str, Any], dataset: str | None, source: str) -> list[Any]:
    from huggingface_hub import EvalResult

    dataset_type = dataset or "local"
    dataset_name = "Rotten Tomatoes" if dataset == RT_DATASET else (dataset or Path(source).name)
    results = []
    for prefix, split in reversed(METRIC_SPLITS):
        for key, name in METRIC_NAMES.items():
            value = metrics.get(f"{prefix}_{key}")
            if value is None:
                continue
            results.append(
                EvalResult(
                    task_type="text-classification",
                    task_name="Sentiment Analysis",
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=split,
                    metric_type=key,
                    metric_name=f"{name} ({split})",
                    metric_value=round(float(value), 4),
                )
            )
    return results


def _results_table(
    metrics: dict[str, Any], sizes: dict[str, Any], binary: bool = True, unbalanced: bool = False
) -> str:
    """One row per split. With more than two labels F1/precision/recall are the macro averages
    (metrics.py), so only the macro columns show; unbalanced classes put macro F1 first."""
    names = dict(METRIC_NAMES)
    if not binary:
        names = {
            "accuracy": "Accuracy",
            "precision_macro": "Macro precision",
            "recall_macro": "Macro recall",
            "f1_macro": "Macro F1",
        }
    if unbalanced:
        names = {"f1_macro": names["f1_macro"], **names}
    rows = []
    for prefix, split in METRIC_SPLITS:
        values = [metrics.get(f"{prefix}_{key}") for key in names]
        if all(v is None for v in values):
            continue
        cells = [NA if v is None else f"{float(v):.4f}" for v in values]
        rows.append([split, sizes.get(split, NA), *cells])
    return markdown_table(["split", "samples", *names.values()], rows)


def _per_class_table(run: RunDir) -> str:
    """Test precision / recall / F1 / support per class from ``sentiment eval`` ("" if absent)."""
    per_class = run.eval_metrics("test").get("test_per_class")
    if not per_class:
        return ""
    rows = [
        [f"`{name}`", *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")), row["support"]]
        for name, row in per_class.items()
    ]
    return markdown_table(["label", "precision", "recall", "F1", "support"], rows)


def _class_balance(run: RunDir) -> str | None:
    """``neg 4265 / pos 426`` from the manifest's train class counts (None when absent)."""
    counts = run.manifest.get("class_counts", {}).get("train")
    return " / ".join(f"{name} {n}" for name, n in counts.items()) if counts else None


def _class_weights(run: RunDir) -> str | None:
    """The loss weights the run trained with (None: plain cross-entropy)."""
    weights = run.manifest.get("class_weights")
    if not weights:
        return None
    spec = run.recipe.training.get("class_weights") if run.recipe else None
    how = " (auto: N / (K * n_c))" if spec == "auto" else ""
    return " / ".join(f"{name} {w:.3g}" for name, w in weights.items()) + how


def _recipe_table(run: RunDir, base_model: str | None, dataset: str | None, source: str) -> str:
    recipe, manifest = run.recipe, run.manifest
    model = recipe.model if recipe else None
    training = recipe.training if recipe else {}
    sizes = manifest.get("split_sizes", {})
    backbone = model.backbone if model else None
    rows = [
        ("backbone", base_model or f"local folder `{Path(str(backbone)).name}`"),
        ("max_length (tokens)", run.max_length),
        ("data", dataset or source),
        ("train / validation / test", " / ".join(str(sizes.get(s, NA)) for s in SPLITS)),
        ("train examples per class", _class_balance(run)),
        ("class weights (loss)", _class_weights(run)),
        ("epochs", training.get("num_train_epochs")),
        ("learning rate", training.get("learning_rate")),
        ("batch size (per device)", training.get("per_device_train_batch_size")),
        ("weight decay", training.get("weight_decay")),
        ("warmup", training.get("warmup_steps", training.get("warmup_ratio"))),
        ("seed", training.get("seed")),
        ("world size", manifest.get("world_size")),
        ("training time (s)", manifest.get("train_runtime_s")),
    ]
    return markdown_table(["setting", "value"], [r for r in rows if r[1] not in (None, "")])


def _parity_table(parity: dict[str, Any]) -> str:
    rows = [["PyTorch (reference)", "-", "-", f"{parity['torch']['accuracy']:.4f}"]]
    for key in ("onnx", "onnx-int8"):
        if key in parity:
            row = parity[key]
            rows.append(
                [
                    row["file"],
                    f"{row['max_abs_logit_diff']:.2e}",
                    f"{row['argmax_agreement_pct']:.2f} %",
                    f"{row['accuracy']:.4f}",
                ]
            )
    return markdown_table(["file", "max abs logit diff", "argmax agreement", "accuracy"], rows)


def _calibration(run: RunDir) -> dict[str, str] | None:
    """The card's calibration line, from the stored policy and metrics (None: uncalibrated)."""
    before, after = run.metrics.get("test_ece_uncalibrated"), run.metrics.get("test_ece")
    method = run.policy.calibration_method()
    if method is None or before is None or after is None:
        return None
    return {
        "method": method,
        "ece_before": f"{before:.3f}",
        "ece_after": f"{after:.3f}",
    }


def _long_text(run: RunDir) -> str:
    """How the run reads an input longer than ``max_length`` tokens (its ``model.long_text``)."""
    cfg, n = run.long_text, run.max_length
    if cfg.mode == "truncate":
        return f"an input longer than {n} tokens is truncated to its first {n} tokens"
    if cfg.cut == "sentences":
        windows = f"windows of whole sentences of up to {n} tokens (a longer sentence is cut)"
    else:
        step = (
            f"starting every {cfg.stride} tokens"
            if cfg.stride
            else "each overlapping the next by a quarter"
        )
        windows = f"windows of {n} tokens, {step}"
    rule = run.document_rule
    if rule is not None:
        fitted = (rule.fitted_on or {}).get("texts", "some")
        how = (
            f"decided by a rule fitted on {fitted} labelled long texts (`sentiment document-rule`)"
        )
    else:
        how = "averaged" if cfg.aggregate == "mean" else "their per-label maximum taken"
    return (
        f"`sentiment_hf` reads an input longer than {n} tokens in {windows}, with the windows' "
        f"logits {how}; the server refuses a text that needs more than {cfg.max_windows} "
        f"windows, and `transformers.pipeline` reads only the first {n} tokens"
    )


def _trust(run: RunDir) -> dict[str, str] | None:
    """Test accuracy with its 95 % interval and accuracy at 80 % coverage (None: not measured).

    From ``metrics.json`` when it has them, else from ``sentiment eval``'s
    ``eval/test_metrics.json`` when that scored the run's own data; never mixed, so the
    accuracy and its interval come from the same evaluation.
    """
    keys = ("test_accuracy_ci95", "test_accuracy_at_80pct_coverage")
    metrics, where = run.metrics, METRICS_FILE
    if not any(key in metrics for key in keys):
        metrics, where = run.eval_metrics("test"), f"{EVAL_DIR}/test_metrics.json"
        source = run.recipe.data.source if run.recipe else None
        if source is None or metrics.get("data_source") != source:
            return None
    interval, at_80 = (metrics.get(key) for key in keys)
    if metrics.get("test_accuracy") is None or (interval is None and at_80 is None):
        return None
    return {
        "where": where,
        "samples": str(metrics.get("test_samples", NA)),
        "accuracy": f"{metrics['test_accuracy']:.4f}",
        "interval": f"{interval[0]:.4f} to {interval[1]:.4f}" if interval else "",
        "at_80": f"{at_80:.4f}" if at_80 is not None else "",
    }


def build_model_card(
    model_dir: str | Path | RunDir, repo_id: str, license: str = "apache-2.0"
) -> str:
    """The ``README.md`` model card of a run: YAML metadata from its real metrics, then a body."""
    from huggingface_hub import ModelCard, ModelCardData

    run = open_run(model_dir)
    metrics = run.metrics
    if not metrics:
        raise SentimentError(
            f"{str(run.path)!r} has no {METRICS_FILE}, so the model card would have no results; "
            "pass a run directory that `sentiment train` finished"
        )
    recipe = run.recipe
    source = str((recipe.data.source if recipe else None) or run.manifest.get("data_source") or "")
    dataset = hub_dataset(source)
    base_model = hub_base_model(recipe.model.backbone if recipe else None)
    name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        model_name=name,
        license=license,
        language="en",
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["sentiment-analysis", "text-classification", "sentiment-hf"],
        base_model=base_model,
        datasets=[dataset] if dataset else None,
        metrics=["accuracy", "f1"],
        eval_results=_eval_results(metrics, dataset, source),
    )
    parity = run.parity
    context = dict(
        name=name,
        repo_id=repo_id,
        kind=run.task.kind(run.labels),
        labels=run.labels,
        base_model=base_model,
        data_line=(
            f"[{dataset}](https://huggingface.co/datasets/{dataset})"
            if dataset
            else "a local data set"
        ),
        recipe_table=_recipe_table(run, base_model, dataset, source),
        results_table=_results_table(
            metrics,
            run.manifest.get("split_sizes", {}),
            binary=len(run.labels) == 2,
            unbalanced=is_unbalanced(run.manifest.get("class_counts", {}).get("train")),
        ),
        per_class_table=_per_class_table(run),
        parity_table=_parity_table(parity) if parity else "",
        parity_samples=parity.get("samples"),
        parity_split=parity.get("split"),
        max_length=run.max_length,
        long_text=_long_text(run),
        answers=run.policy.describe(len(run.labels)),
        abstains=run.policy.min_confidence is not None,
        calibration=_calibration(run),
        trust=_trust(run),
    )
    # as ModelCard.from_template renders, through the package's Markdown environment: the card
    # data's fields, ours over them, and the metadata block as YAML
    fields = {**card_data.to_dict(), **context, "card_data": card_data.to_yaml()}
    return str(ModelCard(render("model_card.md", **fields)))
