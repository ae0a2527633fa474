"""Recipes: typed dataclasses are the schema, YAML supplies values, dotted overrides win.

Unknown keys and values of the wrong type are errors, never warnings. The ``training``
section takes any :class:`transformers.TrainingArguments` field; the project's defaults
(:data:`TRAINING_DEFAULTS`) sit under it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sentiment_hf.config.schema import apply_overrides, build, coerce
from sentiment_hf.config.sweep import SweepConfig, build_sweep
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_text_atomic
from sentiment_hf.longtext import LongTextConfig, check_long_text

DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DATASET = "cornell-movie-review-data/rotten_tomatoes"

#: Project defaults for ``training`` (TrainingArguments fields); a recipe overrides any of them.
#: ``recipes/base.yaml`` restates each one it names with the same value (tests/test_recipe.py);
#: its CPU speed settings (``bf16``, ``train_sampling_strategy``) stay in the recipe, since the
#: recipes that omit them (``pipeline.yaml``) train without them.
TRAINING_DEFAULTS: dict[str, Any] = {
    "output_dir": "runs/base",
    "num_train_epochs": 4.0,
    "learning_rate": 1.3e-4,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 128,
    "weight_decay": 0.01,
    "warmup_steps": 0.1,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "logging_strategy": "steps",
    "logging_steps": 50,
    "load_best_model_at_end": True,
    "metric_for_best_model": "accuracy",
    "greater_is_better": True,
    "save_total_limit": 2,
    "seed": 42,
    "report_to": "none",
    # transformers 5 averages tokens across DDP ranks by default, which doubles the
    # sequence-classification loss under torchrun (measured, see ../shared/GUIDE.md).
    "average_tokens_across_devices": False,
    "dataloader_num_workers": 0,
}

#: Keys of ``training`` that the project adds to the TrainingArguments fields (taken out before
#: ``TrainingArguments`` is built), with what they do.
PROJECT_TRAINING_KEYS: dict[str, str] = {
    "class_weights": (
        "`null` (plain cross-entropy), `auto` (inverse class frequency of the train split, "
        "`N / (K * n_c)`) or `{label: weight}` (unnamed labels weigh 1.0): a weighted "
        "cross-entropy loss; the weights used are recorded in `manifest.json`"
    ),
    "min_steps": (
        "`null` (off) or an integer: when `num_train_epochs` would give fewer optimizer steps "
        "than this on the run's training split, each epoch passes over the split several times "
        "(the fewest that reach it), so small data trains long enough with the recipe's "
        "evaluations, patience and warm-up share unchanged; the count is logged and recorded "
        "as `train_repeats` in `manifest.json`; ignored when `max_steps` is set"
    ),
}


def check_dropout(dropout: Any) -> float:
    """``dropout`` as a float if it is a probability in [0, 1), else one clear error."""
    if isinstance(dropout, bool) or not 0.0 <= float(dropout) < 1.0:
        raise SentimentError(f"model.dropout must be a probability in [0, 1), got {dropout!r}")
    return float(dropout)


@dataclass
class ModelConfig:
    """Which backbone to fine-tune and how to tokenize for it (``long_text``: longer inputs)."""

    backbone: str = DEFAULT_BACKBONE
    max_length: int = 64
    revision: str | None = None
    trust_remote_code: bool = False
    dropout: float | None = None
    cache_dir: str | None = None
    long_text: LongTextConfig = field(default_factory=LongTextConfig)

    def __post_init__(self) -> None:
        check_long_text(self.long_text, self.max_length)
        if self.dropout is not None:  # refused before any data loads
            check_dropout(self.dropout)


@dataclass
class DataConfig:
    """Where the examples come from and how their columns are named.

    ``encoding`` reads CSV/TSV files in that codec (default: UTF-8, a BOM dropped, else cp1252
    with a warning). ``check`` runs the data check at the start of training: ``strict`` stops on
    its errors (leakage, conflicting labels, empty texts), ``warn`` only logs, ``skip`` skips it
    (not ``off``: YAML reads that as false). ``num_proc`` tokenizes each split in that many
    processes (``datasets.map``); unset, one (a forked pool was seen to hang here).
    Multi-label data (docs: Multi-label) has a
    ``label_column`` of lists of names, or one 0/1 column per label named in ``label_columns``.
    """

    source: str = DEFAULT_DATASET
    text_column: str = "text"
    label_column: str = "label"
    label_names: list[str] | None = None
    #: Multi-label from several 0/1 columns, one per label (the column names are the labels).
    #: A label column of lists (JSON lists in CSV) is multi-label without it.
    label_columns: list[str] | None = None
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_test_samples: int | None = None
    validation_size: float = 0.1
    test_size: float = 0.1
    pad_to_multiple_of: int | None = 8
    encoding: str | None = None
    check: typing.Literal["strict", "warn", "skip"] = "strict"
    #: Tokenization processes per split; None: one (see the class docstring).
    num_proc: int | None = None

    def __post_init__(self) -> None:
        if self.num_proc is not None and self.num_proc < 1:
            raise SentimentError(
                f"data.num_proc must be 1 or more, got {self.num_proc}; or leave it unset "
                "(one process)"
            )


@dataclass
class EarlyStoppingConfig:
    """Stop when the best-model metric has not improved for ``patience`` evaluations."""

    patience: int | None = 2
    threshold: float = 0.0


@dataclass
class TrackingConfig:
    """Experiment tracking. W&B runs offline when no API key is configured."""

    wandb: bool = False
    project: str = "sentiment-hf"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class PolicyConfig:
    """The decision policy fitted at the end of training (``sentiment calibrate`` refits it).

    ``calibrate`` fits one temperature on the validation split, minimising ``objective``
    (``nll``, or ``ece``: 10-bin ECE over a grid of temperatures); ``threshold_metric``
    (``f1`` or ``balanced_accuracy``, binary only) also tunes the decision threshold there;
    below ``min_confidence`` predict, eval and the server answer ``uncertain``.
    """

    calibrate: bool = True
    objective: typing.Literal["nll", "ece"] = "nll"
    threshold_metric: typing.Literal["f1", "balanced_accuracy"] | None = None
    min_confidence: float | None = None


@dataclass
class Recipe:
    """A whole run: model, data, TrainingArguments fields and the extras around them."""

    name: str = "base"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: dict[str, Any] = field(default_factory=lambda: dict(TRAINING_DEFAULTS))
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sweep: SweepConfig | None = None

    @property
    def output_dir(self) -> Path:
        """The run directory."""
        return Path(self.training["output_dir"])

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that :func:`recipe_from_dict` turns back into the same recipe."""
        out = dataclasses.asdict(self)
        if out.get("sweep") is None:
            out.pop("sweep", None)  # plain training recipes stay free of an empty section
        return out

    def to_yaml(self) -> str:
        """The resolved recipe as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _training_fields() -> dict[str, dataclasses.Field]:
    from transformers import TrainingArguments

    return {f.name: f for f in dataclasses.fields(TrainingArguments) if f.init}


def _build_training(data: Any, where: str) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SentimentError(f"{where}: expected a mapping of TrainingArguments fields")
    fields = _training_fields()
    hints = typing.get_type_hints(__import__("transformers").TrainingArguments)
    merged = dict(TRAINING_DEFAULTS)
    for key, value in data.items():
        if key == "class_weights":
            from sentiment_hf.imbalance import check_class_weights

            merged[key] = check_class_weights(value, f"{where}.{key}")
            continue
        if key == "min_steps":
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise SentimentError(
                    f"{where}.min_steps: expected null or an integer >= 1, got {value!r}"
                )
            merged[key] = value
            continue
        if key not in fields:
            raise SentimentError(
                f"{where}: unknown key {key!r}: not a transformers.TrainingArguments field "
                f"nor one of the project's keys ({', '.join(PROJECT_TRAINING_KEYS)}); check the "
                "spelling (see `sentiment train --help`)"
            )
        merged[key] = coerce(value, hints.get(key, Any), f"{where}.{key}")
    return merged


def recipe_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Validate a mapping (plus overrides) into a :class:`Recipe`."""
    raw = apply_overrides(dict(raw), overrides)
    return build(Recipe, raw, "", {"training": _build_training, "sweep": _build_sweep_or_none})


def _build_sweep_or_none(data: Any, where: str) -> SweepConfig | None:
    return None if data is None else build_sweep(data, where, _training_fields())


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Read a recipe file into a raw mapping, with one-line errors for the usual mistakes."""
    path = Path(path)
    if not path.is_file():
        raise SentimentError(
            f"recipe file {str(path)!r} not found; pass a YAML file such as recipes/base.yaml"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SentimentError(f"recipe {str(path)!r} is not valid YAML{at}; fix its syntax") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SentimentError(f"recipe {str(path)!r} must be a YAML mapping of sections")
    return raw


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a YAML recipe, apply ``KEY=VALUE`` overrides and validate it against the schema."""
    return recipe_from_dict(read_recipe_file(path), overrides)


def save_recipe(recipe: Recipe, path: str | Path) -> Path:
    """Write the resolved recipe as YAML (atomically) and return its path."""
    return write_text_atomic(path, recipe.to_yaml())
