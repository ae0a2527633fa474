"""The run directory: its file names and one reader that opens and validates a trained run.

``sentiment train`` writes a run directory; every later stage (eval, predict, export, serve,
drift, push-to-hub) opens it through :class:`RunDir`, so the layout is written down here once::

    RUN_DIR/
      config.json              model config with id2label / label2id       (transformers)
      model.safetensors        weights                                      (transformers)
      tokenizer files          tokenizer                                    (transformers)
      recipe.yaml              the resolved recipe                          (train)
      metrics.json             validation / test metrics of the run         (train)
      manifest.json            what ran: versions, device, effective settings (train)
      policy.json, reliability.png  temperature, threshold, abstain band   (train, calibrate)
      model.onnx, model.int8.onnx, export_parity.json                       (export)
      eval/                    {split}_metrics.json, {split}_report.html, PNGs, errors CSV (eval)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiment_hf.config.recipe import (
    TRAINING_DEFAULTS,
    DataConfig,
    PolicyConfig,
    Recipe,
    read_recipe_file,
    recipe_from_dict,
)
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import read_json
from sentiment_hf.longtext import DocumentRule, LongTextConfig
from sentiment_hf.tasks.task import Task, task_for

if TYPE_CHECKING:
    from sentiment_hf.data.load import SentimentData
    from sentiment_hf.tasks.policy import DecisionPolicy

CONFIG_FILE = "config.json"
RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
PARITY_FILE = "export_parity.json"
#: ONNX metadata key holding :attr:`RunDir.weights_sha256` of the weights a file was exported from.
ONNX_WEIGHTS_KEY = "sentiment_hf.weights_sha256"
POLICY_FILE = "policy.json"
#: The document rule fitted on labelled long texts (``sentiment document-rule``), when there is one.
DOCUMENT_RULE_FILE = "document_rule.json"
RELIABILITY_FILE = "reliability.png"
EVAL_DIR = "eval"
#: ``sentiment eval``'s metrics of one split, in the report folder.
EVAL_METRICS_FILE = "{split}_metrics.json"
#: What later stages make from a run's weights (export, calibrate, eval): stale once training
#: writes new weights, so a finished training removes them.
DERIVED_FROM_WEIGHTS = (ONNX_FILE, INT8_FILE, PARITY_FILE, POLICY_FILE, RELIABILITY_FILE, EVAL_DIR)
WEIGHTS_GLOB = "model*.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
#: Token budget when a run has no recipe: the position limit of BERT-like encoders.
FALLBACK_MAX_LENGTH = 512


@dataclass(frozen=True)
class RunDir:
    """A trained run directory, validated on :meth:`open`; its files are read on first use."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open ``path``, raising a clear :class:`SentimentError` unless it holds a classifier."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            parent = path.parent
            hint = (
                f"pass its folder {str(parent)!r}"
                if (parent / CONFIG_FILE).is_file()
                else "pass a run directory"
            )
            raise SentimentError(
                f"{str(path)!r} is a file, not a run directory; {hint} (the folder `sentiment "
                f"train` wrote, holding {CONFIG_FILE}, model.safetensors and {RECIPE_FILE})"
            )
        if not path.is_dir():
            raise SentimentError(
                f"model directory {str(path)!r} does not exist; train one with `sentiment train`"
            )
        run = cls(path)
        if not (path / CONFIG_FILE).is_file() or not run.weights:
            raise SentimentError(
                f"{str(path)!r} is not a trained model directory (needs {CONFIG_FILE} and "
                "model.safetensors); pass the run directory that `sentiment train` wrote"
            )
        if not run.config.get("id2label"):
            raise SentimentError(
                f"{path / CONFIG_FILE} has no id2label; it is not a sequence classifier"
            )
        return run

    # ------------------------------------------------------------------ files
    def file(self, name: str) -> Path:
        """The path of ``name`` inside the run directory."""
        return self.path / name

    @property
    def name(self) -> str:
        """The run's name: its directory name."""
        return self.path.resolve().name

    @property
    def weights(self) -> list[Path]:
        """The safetensors weight files, sorted."""
        return sorted(self.path.glob(WEIGHTS_GLOB))

    @property
    def eval_dir(self) -> Path:
        """Where ``sentiment eval`` writes its reports by default."""
        return self.path / EVAL_DIR

    def eval_metrics(self, split: str = "test") -> dict[str, Any]:
        """``sentiment eval``'s metrics of ``split`` in :attr:`eval_dir` (``{}`` when absent)."""
        return read_json(self.eval_dir / EVAL_METRICS_FILE.format(split=split))

    def onnx_path(self, quantized: bool = False) -> Path:
        """Where the exported fp32 (or int8) ONNX model lives."""
        return self.path / (INT8_FILE if quantized else ONNX_FILE)

    # ------------------------------------------------------------------ contents
    @cached_property
    def config(self) -> dict[str, Any]:
        """``config.json`` as a dict."""
        try:
            return read_json(self.path / CONFIG_FILE)
        except json.JSONDecodeError as exc:
            raise SentimentError(
                f"{self.path / CONFIG_FILE} is not valid JSON; the model directory is damaged"
            ) from exc

    @cached_property
    def labels(self) -> list[str]:
        """Label names in class-index order (from ``config.json``'s ``id2label``)."""
        id2label = {int(k): v for k, v in self.config["id2label"].items()}
        return [id2label[i] for i in range(len(id2label))]

    @cached_property
    def task(self) -> Task:
        """The run's task, read once from ``config.json``'s ``problem_type``."""
        return task_for(self.config.get("problem_type"))

    @cached_property
    def recipe(self) -> Recipe | None:
        """The run's recipe, validated by the recipe schema; None when the run has none."""
        path = self.path / RECIPE_FILE
        return recipe_from_dict(read_recipe_file(path)) if path.is_file() else None

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` (``{}`` when absent)."""
        return read_json(self.path / METRICS_FILE)

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json`` (``{}`` when absent)."""
        return read_json(self.path / MANIFEST_FILE)

    @cached_property
    def parity(self) -> dict[str, Any]:
        """``export_parity.json`` (``{}`` when the run was not exported)."""
        return read_json(self.path / PARITY_FILE)

    @cached_property
    def document_rule(self) -> DocumentRule | None:
        """The fitted rule for texts read in several windows (None: the ``aggregate`` rule)."""
        path = self.path / DOCUMENT_RULE_FILE
        if not path.is_file():
            return None
        try:
            rule = DocumentRule(**read_json(path))
        except (TypeError, json.JSONDecodeError) as exc:
            raise SentimentError(
                f"{path} is damaged ({exc}); fit it again with sentiment document-rule, or "
                "delete it to decide long texts by model.long_text.aggregate"
            ) from exc
        if rule.cut != self.long_text.cut:
            raise SentimentError(
                f"{path} was fitted on windows cut at {rule.cut}, but the run cuts them at "
                f"{self.long_text.cut} (model.long_text.cut): fit it again with sentiment "
                "document-rule, or delete it"
            )
        return rule

    @property
    def policy_config(self) -> PolicyConfig:
        """The recipe's ``policy:`` section (the schema's defaults for a run without a recipe)."""
        return self.recipe.policy if self.recipe is not None else PolicyConfig()

    @cached_property
    def policy(self) -> DecisionPolicy:
        """The stored decision policy; the identity policy of the run's task when it has none
        (multi-label: per-label sigmoids, each label at 0.5)."""
        path = self.path / POLICY_FILE
        if not path.is_file():
            return self.task.identity_policy()
        try:
            return self.task.read_policy(read_json(path), where=path)
        except (json.JSONDecodeError, TypeError) as exc:
            raise SentimentError(
                f"{path} is damaged ({exc}); re-create it with `sentiment calibrate {self.path}`"
            ) from exc

    @property
    def max_length(self) -> int:
        """Tokens per input the model was trained with (the recipe's ``model.max_length``)."""
        if self.recipe is not None:
            return self.recipe.model.max_length
        return int(self.config.get("max_position_embeddings") or FALLBACK_MAX_LENGTH)

    @property
    def training_seed(self) -> int:
        """The seed the run trained with; it also cut single-file data into its splits, so every
        stage that reloads the run's data passes it to ``load_splits``."""
        training = self.recipe.training if self.recipe is not None else TRAINING_DEFAULTS
        return int(training.get("seed", TRAINING_DEFAULTS["seed"]))

    @property
    def long_text(self) -> LongTextConfig:
        """How inputs longer than :attr:`max_length` are read (the recipe's ``model.long_text``).

        A run whose recipe predates the field, or that has no recipe, gets the schema default.
        """
        if self.recipe is not None:
            return self.recipe.model.long_text
        return LongTextConfig()

    def data_config(self, source: str | None = None, limits: bool = False) -> DataConfig:
        """The data config the run was trained on, ``source`` replacing its data; without the
        ``data.max_*_samples`` limits unless ``limits`` (the rows metrics.json describes)."""
        if self.recipe is not None:
            cfg = self.recipe.data
        elif source is None:
            raise SentimentError(
                f"{str(self.path)!r} has no {RECIPE_FILE} to say which data it was trained on; "
                "pass --data PATH"
            )
        else:
            cfg = DataConfig()
        cfg = dataclasses.replace(cfg)  # a copy: the cached recipe stays as read
        if source is not None:
            cfg.source = source
        if not limits:
            cfg.max_train_samples = cfg.max_eval_samples = cfg.max_test_samples = None
        return cfg

    def load_splits(
        self,
        splits: tuple[str, ...],
        source: str | None = None,
        *,
        limits: bool = False,
        whole_file: bool = False,
        carve: bool | None = None,
        max_samples: dict[str, int | None] | None = None,
    ) -> SentimentData:
        """The ``splits`` of the run's data, read the one way every stage after training reads it.

        The run's own data (``source`` None) is cut as training cut it (the run's seed), with the
        recipe's ``data.max_*_samples`` when ``limits`` (the rows ``metrics.json`` describes), else
        whole. Other data (``source``): a file is read whole as each split when ``whole_file``,
        and a split it lacks is never cut out of its train unless ``carve`` says so.
        ``max_samples`` (split -> rows, e.g. ``{"test": 48}``) caps splits after a seeded
        shuffle. The label names are the run's, and data of the other task is refused.
        """
        from sentiment_hf.data.load import load_splits  # datasets only when data is read

        cfg = self.data_config(source, limits=limits and source is None)
        cfg.label_names = self.labels
        for split, limit in (max_samples or {}).items():
            key = {"validation": "max_eval_samples"}.get(split, f"max_{split}_samples")
            setattr(cfg, key, limit)
        loaded = load_splits(
            cfg,
            seed=self.training_seed,
            splits=splits,
            whole_file=whole_file and source is not None,
            carve=source is None if carve is None else carve,
        )
        self.task.check_same(loaded.task, cfg.source)
        return loaded

    @cached_property
    def weights_sha256(self) -> str:
        """SHA-256 (hex) over the safetensors weight files, in name order."""
        digest = hashlib.sha256()
        for weights in self.weights:
            with open(weights, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    @property
    def model_version(self) -> str:
        """``<run name>-<first 12 hex of the weights' SHA-256>``: changes whenever weights do."""
        return f"{self.name}-{self.weights_sha256[:12]}"


def open_run(path: str | Path | RunDir) -> RunDir:
    """``path`` as a validated :class:`RunDir` (a RunDir passes through)."""
    return path if isinstance(path, RunDir) else RunDir.open(path)
