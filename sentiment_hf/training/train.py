"""Fine-tune with the HF Trainer and write the run directory.

The skeleton follows transformers' ``run_classification.py``: seed, find the last checkpoint,
tokenize under ``main_process_first``, Trainer, save model + metrics + state; files are written
on the main process only.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sentiment_hf.config.recipe import PROJECT_TRAINING_KEYS, Recipe, save_recipe
from sentiment_hf.data.load import SentimentData, load_splits
from sentiment_hf.data.tokenize import tokenize_splits
from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_json
from sentiment_hf.hardware import cpu_has_native_bf16
from sentiment_hf.imbalance import class_counts, resolve_class_weights
from sentiment_hf.modeling import build_model, build_tokenizer, resolve_backbone
from sentiment_hf.rundir import (
    MANIFEST_FILE,
    METRICS_FILE,
    RECIPE_FILE,
)
from sentiment_hf.training.manifest import build_manifest
from sentiment_hf.training.outputs import (
    check_run_dir,
    remove_derived,
    share_checkpoint_weights,
    share_weights,
)
from sentiment_hf.training.sampling import with_seeded_sampling
from sentiment_hf.training.tracking import configure_tracking

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything a Trainer needs that does not depend on hyperparameters."""

    recipe: Recipe
    data: SentimentData
    tokenized: Any
    tokenizer: Any
    backbone_path: str
    #: label name -> loss weight (``training.class_weights``), None for plain cross-entropy
    class_weights: dict[str, float] | None = None

    @property
    def label_names(self) -> list[str]:
        return self.data.label_names

    @property
    def model_overrides(self) -> dict[str, Any]:
        """Config fields the data decides: ``problem_type`` for multi-label data (BCE loss)."""
        return self.data.task.model_config()

    @property
    def train_class_counts(self) -> dict[str, int]:
        """Train examples per class, keyed by label name."""
        return class_counts(self.data.splits["train"]["label"], self.label_names)


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    metrics: dict[str, float]
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EffectiveChange:
    """A TrainingArguments field that ran with another value than the recipe asked for."""

    field: str
    requested: Any  # the recipe's value (with the caller's overrides), else the field's default
    used: Any
    why: str
    warn: bool = False  # changes the numbers or the speed the recipe was tuned for

    def to_dict(self) -> dict[str, Any]:
        """The manifest's record: ``{"field", "requested", "used", "why"}``."""
        return {k: v for k, v in asdict(self).items() if k != "warn"}


def _training_kwargs(
    recipe: Recipe, overrides: dict[str, Any]
) -> tuple[dict[str, Any], list[EffectiveChange]]:
    """The TrainingArguments keywords the run uses, and each change made to what was asked."""
    import torch
    from transformers import TrainingArguments

    kwargs = {**recipe.training, **overrides}
    for key in PROJECT_TRAINING_KEYS:  # the project's own keys are no TrainingArguments fields
        kwargs.pop(key, None)
    defaults = {f.name: f.default for f in fields(TrainingArguments)}
    changes: list[EffectiveChange] = []

    def use(name: str, value: Any, why: str, warn: bool = False) -> None:
        requested = kwargs.get(name, defaults.get(name))
        if requested != value:
            changes.append(EffectiveChange(name, requested, value, why, warn))
        kwargs[name] = value

    report_to = configure_tracking(recipe.tracking, run_name=recipe.name)
    if report_to:
        if "report_to" not in overrides:
            use("report_to", report_to, "tracking.wandb is true")
        if "run_name" not in kwargs:
            use("run_name", recipe.name, "tracking: the run is named after the recipe")
    if not torch.cuda.is_available():
        use("dataloader_pin_memory", False, "no CUDA device; pinning needs one")
        # Without use_cpu, transformers 5 ignores a torchrun (gloo) process group on CPU and
        # every rank trains alone; with it, CPU ranks really run DDP.
        use("use_cpu", True, "no CUDA device; CPU ranks run DDP over gloo")
        if kwargs.get("bf16") and not cpu_has_native_bf16():
            use("bf16", False, "CPU lacks AVX512_BF16/AMX: bf16 is slower there", warn=True)
    return kwargs, changes


def repeats_for_min_steps(args: Any, train_examples: int, min_steps: int | None) -> int:
    """How many times the training split is repeated within each epoch so that the run takes
    at least ``min_steps`` optimizer steps (``training.min_steps``); 1 when it already does.

    Repeating the data, not adding epochs, keeps the recipe's shape on small data: the same
    number of evaluations, checkpoints and early-stopping patience, the same warm-up share.
    Steps per epoch are counted as the Trainer does (batches per rank, the last one partial,
    over the gradient accumulation steps). ``max_steps`` set: 1.
    """
    if not min_steps or args.max_steps > 0 or train_examples < 1 or args.num_train_epochs <= 0:
        return 1  # (no epochs: no count of repeats reaches it)

    def steps(repeats: int) -> float:
        batches = math.ceil(
            train_examples * repeats / (args.per_device_train_batch_size * args.world_size)
        )
        return args.num_train_epochs * max(1, math.ceil(batches / args.gradient_accumulation_steps))

    repeats = 1
    while steps(repeats) < min_steps:
        repeats += 1
    return repeats


def resolve_training_args(recipe: Recipe, **overrides: Any) -> tuple[Any, list[EffectiveChange]]:
    """TrainingArguments from the recipe's ``training`` section (plus tracking and overrides),
    and every field this machine or the tracking set-up made differ from what was asked.

    The changes are logged once here (a warning when one alters precision) and belong in the
    run's manifest, so that what ran is what is recorded.
    """
    from transformers import TrainingArguments

    kwargs, changes = _training_kwargs(recipe, overrides)
    if changes:
        log.log(
            logging.WARNING if any(c.warn for c in changes) else logging.INFO,
            "training settings changed for this run: %s",
            "; ".join(f"{c.field} {c.requested!r} -> {c.used!r} ({c.why})" for c in changes),
        )
    try:
        return TrainingArguments(**kwargs), changes
    except (ValueError, TypeError) as exc:
        raise SentimentError(f"invalid training settings: {exc}".splitlines()[0]) from exc


def build_training_args(recipe: Recipe, **overrides: Any) -> Any:
    """TrainingArguments from the recipe's ``training`` section (plus tracking and overrides)."""
    return resolve_training_args(recipe, **overrides)[0]


def prepare(recipe: Recipe, args: Any) -> Prepared:
    """Load data, run the data check (``data.check``), resolve the backbone and tokenize
    (rank 0 first under torchrun)."""
    data = load_splits(recipe.data, seed=recipe.training.get("seed", 42))
    backbone = resolve_backbone(
        recipe.model.backbone, recipe.model.revision, recipe.model.cache_dir
    )
    tokenizer = build_tokenizer(backbone, recipe.model)
    if recipe.data.check != "skip":
        from sentiment_hf.datacheck import check_loaded, gate

        gate(check_loaded(data, tokenizer, recipe.model.max_length), recipe.data.check)
    tokenized = tokenize_splits(
        data,
        tokenizer,
        recipe.model.max_length,
        main_process_first=args.main_process_first(desc="tokenize"),
        long_text=recipe.model.long_text,
        num_proc=recipe.data.num_proc,
    )
    prepared = Prepared(recipe, data, tokenized, tokenizer, backbone)
    weights = recipe.training.get("class_weights")
    data.task.check_class_weights(weights)
    prepared.class_weights = resolve_class_weights(weights, prepared.train_class_counts)
    return prepared


def build_trainer(
    prepared: Prepared,
    args: Any,
    model_init: Any = None,
    callbacks: list[Any] | None = None,
    trainer_cls: Any = None,
) -> Any:
    """A Trainer with dynamic padding, local metrics and early stopping from the recipe.

    ``trainer_cls`` (a Trainer subclass, or a callable taking Trainer's arguments) is built
    instead of ``transformers.Trainer``; a class gets the epoch-seeded length sampler
    (:mod:`sentiment_hf.training.sampling`) so that a resumed run trains on the same batches.
    """
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer

    recipe = prepared.recipe
    callbacks = [*(callbacks or []), share_checkpoint_weights()]
    patience = recipe.early_stopping.patience
    if patience and args.load_best_model_at_end and args.eval_strategy != "no":
        callbacks.append(
            EarlyStoppingCallback(
                early_stopping_patience=patience,
                early_stopping_threshold=recipe.early_stopping.threshold,
            )
        )
    if prepared.class_weights is not None:
        from sentiment_hf.tasks.losses import weighted_cross_entropy

        weights = [prepared.class_weights[name] for name in prepared.label_names]
        loss_kwargs = {"compute_loss_func": weighted_cross_entropy(weights)}
    else:
        loss_kwargs = {}
    model_kwargs: dict[str, Any] = {"model_init": model_init}
    if model_init is None:
        model_kwargs = {
            "model": build_model(
                prepared.backbone_path,
                prepared.label_names,
                recipe.model,
                **prepared.model_overrides,
            )
        }
    trainer_cls = trainer_cls or Trainer
    if isinstance(trainer_cls, type):  # a factory (the sweep's partial) brings its own class
        trainer_cls = with_seeded_sampling(trainer_cls)
    return trainer_cls(
        args=args,
        train_dataset=prepared.tokenized["train"],
        eval_dataset=prepared.tokenized["validation"],
        processing_class=prepared.tokenizer,
        data_collator=DataCollatorWithPadding(
            prepared.tokenizer, pad_to_multiple_of=recipe.data.pad_to_multiple_of
        ),
        compute_metrics=prepared.data.task.compute_metrics(len(prepared.label_names)),
        callbacks=callbacks,
        **loss_kwargs,
        **model_kwargs,
    )


def finish_run(
    trainer: Any, prepared: Prepared, started: float, extra: dict[str, Any] | None = None
) -> TrainResult:
    """Evaluate on validation and test, save model, recipe, metrics and manifest."""
    from transformers import EarlyStoppingCallback

    recipe = prepared.recipe
    run_dir = Path(trainer.args.output_dir)
    trainer.remove_callback(EarlyStoppingCallback)  # it only judges validation during training
    metrics = {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))}
    test = trainer.evaluate(prepared.tokenized["test"], metric_key_prefix="test")
    metrics.update({k: float(v) for k, v in test.items() if isinstance(v, (int, float))})
    metrics["train_global_step"] = float(trainer.state.global_step)
    manifest: dict[str, Any] = {}
    trainer.save_model(str(run_dir))  # collective under FSDP; writes on the main process only
    trainer.save_state()
    if trainer.is_world_process_zero():
        share_weights(run_dir)
        remove_derived(run_dir)
        save_recipe(recipe, run_dir / RECIPE_FILE)
        write_json(run_dir / METRICS_FILE, metrics)
        manifest = build_manifest(
            prepared.data.fingerprint,
            started,
            time.time(),
            world_size=trainer.args.world_size,
            backbone=recipe.model.backbone,
            backbone_path=prepared.backbone_path,
            data_source=prepared.data.source,
            label_names=prepared.label_names,
            split_sizes={k: len(v) for k, v in prepared.data.splits.items()},
            class_counts={
                k: class_counts(v["label"], prepared.label_names)
                for k, v in prepared.data.splits.items()
            },
            class_weights=prepared.class_weights,
            **(extra or {}),
        )
        write_json(run_dir / MANIFEST_FILE, manifest)
    return TrainResult(run_dir, metrics, manifest)


def train(
    recipe: Recipe,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
    profile_steps: int = 0,
) -> TrainResult:
    """Fine-tune the recipe's backbone and write the run directory; returns its metrics.

    ``profile_steps > 0`` records that many steps with torch.profiler into ``RUN_DIR/profile/``.
    """
    from transformers import set_seed

    started = time.time()
    run_dir = recipe.output_dir
    checkpoint = check_run_dir(run_dir, resume, overwrite)
    args, changes = resolve_training_args(recipe)
    set_seed(args.seed)
    prepared = prepare(recipe, args)
    repeats = repeats_for_min_steps(
        args, len(prepared.tokenized["train"]), recipe.training.get("min_steps")
    )
    if repeats > 1:
        from datasets import concatenate_datasets

        log.info(
            "training.min_steps=%s: %d training examples are repeated %d times per epoch",
            recipe.training["min_steps"],
            len(prepared.tokenized["train"]),
            repeats,
        )
        prepared.tokenized["train"] = concatenate_datasets([prepared.tokenized["train"]] * repeats)
    callbacks = list(callbacks or [])
    if profile_steps > 0:
        from sentiment_hf.training.profiling import ProfilerCallback

        callbacks.append(ProfilerCallback(run_dir, steps=profile_steps))
    trainer = build_trainer(prepared, args, callbacks=callbacks)
    if trainer.is_world_process_zero():
        run_dir.mkdir(parents=True, exist_ok=True)
        save_recipe(recipe, run_dir / RECIPE_FILE)
    train_output = trainer.train(resume_from_checkpoint=checkpoint)
    extra = {
        "effective_changes": [c.to_dict() for c in changes],
        "resumed_from": checkpoint,
        "train_repeats": repeats,
        "train_runtime_s": train_output.metrics.get("train_runtime"),
        "train_samples_per_second": train_output.metrics.get("train_samples_per_second"),
    }
    result = finish_run(trainer, prepared, started, extra)
    policy = recipe.policy
    if policy.calibrate and trainer.is_world_process_zero():
        from sentiment_hf.evaluation.calibrate import fit_policy

        # the model and data training holds (a sharded model only predicts on every rank),
        # without the mixed-precision wrapper accelerate puts around its forward: the policy is
        # fitted on the fp32 logits every backend serves, not on bf16 ones
        single = trainer.args.world_size == 1
        unwrap = trainer.accelerator.unwrap_model
        fitted = fit_policy(
            run_dir,
            threshold_metric=policy.threshold_metric,
            min_confidence=policy.min_confidence,
            objective=policy.objective,
            model=unwrap(trainer.model, keep_fp32_wrapper=False) if single else None,
            loaded=prepared.data,
        )
        result.metrics.update(fitted.metrics)
        log.info(
            "calibrated the %s policy: test ECE %.4f -> %.4f",
            prepared.data.task.name,
            fitted.metrics["test_ece_uncalibrated"],
            fitted.metrics["test_ece"],
        )
    return result
