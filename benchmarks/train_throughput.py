"""Train throughput of the default recipe against plain-Trainer baselines, on this CPU.

One invocation prints everything the speed claims in docs/results.md rest on:

1. Throughput phase: the same short training (packaged all-MiniLM-L6-v2, a fixed shuffled
   slice of rt-polarity's train split, one epoch) under
     (a) a plain Trainer as ``run_classification.py`` defaults do it: every input padded to 128
         tokens (``default_data_collator``), fp32, random batches;
     (b) a plain Trainer with dynamic padding (``DataCollatorWithPadding``), fp32, random batches;
     (c) the project's default recipe, loaded from recipes/base.yaml with ``load_recipe`` and
         built with ``sentiment_hf.training.train``'s ``build_training_args`` / ``prepare`` /
         ``build_trainer``;
   plus ablations of (c) (one setting flipped each), interleaved a, b, c, ... for several
   repetitions after one untimed warm-up per configuration. Prints samples/s of every repetition,
   medians, the ratios against (a) and (b), and the achieved FLOP/s against the machine estimate.
2. Accuracy phase: (b) and (c) trained on the full train split for the recipe's number of
   epochs, then evaluated on the test split (final weights, no best-model selection for either).

All configurations share the recipe's hyperparameters (learning rate, batch size, warm-up, weight
decay, seed); only the speed settings differ. Run it alone on the machine (other engineers share
the 2 cores), e.g.::

    flock /tmp/sentiment_cpu.lock uv run python benchmarks/train_throughput.py \
        --json /tmp/train_throughput.json 2>&1 | tee /tmp/train_throughput.log
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Machine estimate from the issue: fp32 peak of the 2 Zen-4 cores here.
PEAK_FP32_GFLOPS = 190.0
#: The plain-Trainer baselines use run_classification.py's max_seq_length default.
PLAIN_MAX_LENGTH = 128

#: Ablations of the default recipe: name -> (recipe overrides, torch threads, what it shows).
ABLATIONS: dict[str, tuple[list[str], int | None, str]] = {
    "c-fp32": (["training.bf16=false"], None, "default without bf16 autocast"),
    "c-random": (["training.train_sampling_strategy=random"], None, "default, random batches"),
    "c-pad8": (["data.pad_to_multiple_of=8"], None, "default + pad to a multiple of 8"),
    "c-threads1": ([], 1, "default with 1 torch thread instead of 2"),
    "c-workers1": (["training.dataloader_num_workers=1"], None, "default + 1 loader worker"),
    # transformers 5.24 already defaults to the fused AdamW: this repeats (c), a noise control.
    "c-fused": (["training.optim=adamw_torch_fused"], None, "= c (fused AdamW is the default)"),
    "c-compile": (["training.torch_compile=true"], None, "default + torch.compile (inductor)"),
}
DEFAULT_ABLATIONS = list(ABLATIONS)


@dataclass
class Config:
    """One way to build the Trainer for the same training."""

    name: str
    what: str
    kind: str  # "plain" or "recipe"
    pad_to_max: bool = False
    overrides: list[str] = field(default_factory=list)
    threads: int | None = None


def find_rt_polarity() -> Path | None:
    """../shared/data/rt-polarity beside the checkout, searched upwards."""
    for base in (REPO, *REPO.parents):
        candidate = base / "shared" / "data" / "rt-polarity"
        if (candidate / "rt-polarity.pos").is_file():
            return candidate
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=find_rt_polarity(), help="rt-polarity dir")
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "base.yaml")
    parser.add_argument("--samples", type=int, default=1024, help="samples per timed rep")
    parser.add_argument("--warmup-samples", type=int, default=256, help="untimed, per config")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument(
        "--ablations",
        default=",".join(DEFAULT_ABLATIONS),
        help=f"comma-separated ablations of (c), from {', '.join(ABLATIONS)}; '' for none",
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=None,
        help="accuracy phase: full-data epochs for (b) and (c) (default: the recipe's; 0 skips it)",
    )
    parser.add_argument(
        "--baselines", default="a,b", choices=["a,b", "b", "a", ""], help="plain baselines to time"
    )
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args(argv)
    if args.data is None or not (args.data / "rt-polarity.pos").is_file():
        parser.error("--data must point at the rt-polarity directory (rt-polarity.pos/.neg)")
    unknown = [a for a in filter(None, args.ablations.split(",")) if a not in ABLATIONS]
    if unknown:
        parser.error(f"unknown ablation {unknown[0]!r}; choose from {', '.join(ABLATIONS)}")
    return args


BASELINES = {
    "a": Config("a", "plain Trainer, pad to 128, fp32, random batches", "plain", pad_to_max=True),
    "b": Config("b", "plain Trainer, dynamic padding, fp32, random batches", "plain"),
}


def configs(ablations: list[str], baselines: str = "a,b") -> list[Config]:
    out = [BASELINES[name] for name in baselines.split(",") if name]
    out.append(Config("c", "default recipe (recipes/base.yaml)", "recipe"))
    for name in ablations:
        overrides, threads, what = ABLATIONS[name]
        out.append(Config(name, what, "recipe", overrides=list(overrides), threads=threads))
    return out


# --------------------------------------------------------------------------- FLOP model


def flop_model(model: Any) -> tuple[float, int, int]:
    """(Linear weights outside the embeddings, layers, hidden size) of a BERT-like model.

    The pooler and the head only see the [CLS] token but are counted per token (+1.4 % for MiniLM).
    """
    import torch

    encoder = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "embeddings" not in name:
            encoder += module.weight.numel()
    cfg = model.config
    return float(encoder), int(cfg.num_hidden_layers), int(cfg.hidden_size)


def train_flops(
    lengths: list[int], padded: int | None, weights: float, layers: int, hidden: int
) -> float:
    """Forward + backward FLOPs (3x forward) of one batch: 2*W per token + attention scores.

    ``padded`` is the batch's padded length (executed work); ``None`` counts real tokens only.
    For a 27-token sample of all-MiniLM-L6-v2 this gives ~1.7 GFLOP.
    """
    total = 0.0
    for n in lengths:
        seq = padded or n
        total += 3 * (2 * weights * seq + 4 * layers * seq * seq * hidden)
    return total


# --------------------------------------------------------------------------- trainers


def _base_recipe(args: argparse.Namespace, extra: list[str], out: str) -> Any:
    from sentiment_hf.config.recipe import load_recipe

    return load_recipe(
        args.recipe,
        [f"data.source={args.data}", f"training.output_dir={out}", *extra],
    )


def _bench_overrides(epochs: float, out: str) -> dict[str, Any]:
    """TrainingArguments that only take evaluation, checkpoints and logging out of the loop."""
    return {
        "output_dir": out,
        "num_train_epochs": epochs,
        "eval_strategy": "no",
        "save_strategy": "no",
        "load_best_model_at_end": False,
        "logging_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
    }


def build(
    cfg: Config, args: argparse.Namespace, max_train: int | None, epochs: float
) -> tuple[Any, Any]:
    """A ready Trainer (model loaded, data tokenized) for ``cfg`` and its tokenized test split."""
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from sentiment_hf.data.load import load_splits
    from sentiment_hf.modeling import build_tokenizer, resolve_backbone
    from sentiment_hf.training.train import build_trainer, build_training_args, prepare

    out = tempfile.mkdtemp(prefix=f"{cfg.name}-", dir=args.tmp)
    limit = [f"data.max_train_samples={max_train}"] if max_train else []
    recipe = _base_recipe(args, [*limit, *cfg.overrides], out)
    if cfg.kind == "recipe":
        targs = build_training_args(recipe, **_bench_overrides(epochs, out))
        prepared = prepare(recipe, targs)
        return _quiet(build_trainer(prepared, targs)), prepared.tokenized["test"]

    # Plain Trainer: run_classification.py's skeleton, the recipe's hyperparameters.
    data = load_splits(recipe.data, seed=recipe.training["seed"], splits=("train", "test"))
    backbone = resolve_backbone(recipe.model.backbone)
    tokenizer = build_tokenizer(backbone, recipe.model)
    padding = "max_length" if cfg.pad_to_max else False

    def encode(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(
            batch["text"], padding=padding, max_length=PLAIN_MAX_LENGTH, truncation=True
        )

    tokenized = {
        split: ds.map(encode, batched=True, remove_columns=["text"], keep_in_memory=True)
        for split, ds in data.splits.items()
    }
    hp = recipe.training
    targs = TrainingArguments(
        learning_rate=hp["learning_rate"],
        per_device_train_batch_size=hp["per_device_train_batch_size"],
        per_device_eval_batch_size=hp["per_device_eval_batch_size"],
        weight_decay=hp["weight_decay"],
        warmup_steps=hp["warmup_steps"],
        seed=hp["seed"],
        **_bench_overrides(epochs, out),
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone, num_labels=len(data.label_names), use_safetensors=True
    )
    collator = default_data_collator if cfg.pad_to_max else DataCollatorWithPadding(tokenizer)
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["test"],
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=data.task.compute_metrics(len(data.label_names)),
    )
    return _quiet(trainer), tokenized["test"]


def _quiet(trainer: Any) -> Any:
    """No per-run metrics dict on stdout (disable_tqdm swaps the bar for a printer)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def padding_stats(trainer: Any) -> tuple[list[list[int]], list[int]]:
    """Real lengths per batch and the padded length per batch, from one pass of the loader."""
    lengths, padded = [], []
    for batch in trainer.get_train_dataloader():
        mask = batch["attention_mask"]
        lengths.append(mask.sum(dim=1).tolist())
        padded.append(int(mask.shape[1]))
    return lengths, padded


def timed_train(trainer: Any, threads: int | None) -> float:
    """Seconds spent in ``trainer.train()`` (set-up of model and data excluded)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- phases


def throughput_phase(args: argparse.Namespace, cfgs: list[Config]) -> dict[str, Any]:
    from transformers import set_seed

    results: dict[str, Any] = {}
    print(f"\n== throughput: {args.samples} samples x 1 epoch, {args.reps} interleaved reps ==")
    for cfg in cfgs:
        set_seed(42)
        trainer, _ = build(cfg, args, args.warmup_samples, 1.0)
        warm = timed_train(trainer, cfg.threads)
        trainer, _ = build(cfg, args, args.samples, 1.0)
        lengths, padded = padding_stats(trainer)
        weights, layers, hidden = flop_model(trainer.model)
        useful = sum(train_flops(b, None, weights, layers, hidden) for b in lengths)
        executed = sum(
            train_flops(b, p, weights, layers, hidden) for b, p in zip(lengths, padded, strict=True)
        )
        n = sum(len(b) for b in lengths)
        real_tokens = sum(sum(b) for b in lengths)
        results[cfg.name] = {
            "what": cfg.what,
            "overrides": cfg.overrides,
            "threads": cfg.threads,
            "warmup_s": warm,
            "samples": n,
            "real_tokens_per_sample": real_tokens / n,
            "padded_tokens_per_sample": sum(
                p * len(b) for b, p in zip(lengths, padded, strict=True)
            )
            / n,
            "useful_gflop_per_sample": useful / n / 1e9,
            "executed_gflop": executed / 1e9,
            "useful_gflop": useful / 1e9,
            "seconds": [],
        }
        print(
            f"  prepared {cfg.name:<11} warm-up {warm:6.1f}s  tokens/sample real "
            f"{real_tokens / n:5.1f} padded {results[cfg.name]['padded_tokens_per_sample']:5.1f}",
            flush=True,
        )
    for rep in range(args.reps):
        for cfg in cfgs:
            set_seed(42)
            trainer, _ = build(cfg, args, args.samples, 1.0)
            seconds = timed_train(trainer, cfg.threads)
            res = results[cfg.name]
            res["seconds"].append(seconds)
            print(
                f"  rep {rep + 1} {cfg.name:<11} {seconds:7.2f}s "
                f"{res['samples'] / seconds:7.2f} samples/s",
                flush=True,
            )
            del trainer
    for res in results.values():
        res["samples_per_s"] = [res["samples"] / s for s in res["seconds"]]
        res["median_samples_per_s"] = statistics.median(res["samples_per_s"])
        med_s = res["samples"] / res["median_samples_per_s"]
        res["useful_gflops"] = res["useful_gflop"] / med_s
        res["executed_gflops"] = res["executed_gflop"] / med_s
    return results


def accuracy_phase(args: argparse.Namespace, epochs: float) -> dict[str, Any]:
    from transformers import set_seed

    out: dict[str, Any] = {}
    print(f"\n== accuracy: full train split, {epochs:g} epoch(s), test split, final weights ==")
    for cfg in configs([], baselines="b"):
        set_seed(42)
        trainer, test_ds = build(cfg, args, None, epochs)
        n = len(trainer.train_dataset)
        seconds = timed_train(trainer, cfg.threads)
        metrics = trainer.evaluate(test_ds, metric_key_prefix="test")
        out[cfg.name] = {
            "what": cfg.what,
            "epochs": epochs,
            "train_samples": n,
            "train_seconds": seconds,
            "samples_per_s": n * epochs / seconds,
            "test_accuracy": metrics["test_accuracy"],
            "test_f1": metrics.get("test_f1"),
        }
        print(
            f"  {cfg.name}: {seconds:7.1f}s train, {n * epochs / seconds:6.2f} samples/s, "
            f"test accuracy {metrics['test_accuracy']:.4f}",
            flush=True,
        )
    return out


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any], accuracy: dict[str, Any]) -> None:
    medians = {name: res["median_samples_per_s"] for name, res in results.items()}
    refs = [r for r in ("a", "b", "c") if r in medians]
    print("\n== per-repetition train samples/s ==")
    for name, res in results.items():
        reps = "  ".join(f"{x:7.2f}" for x in res["samples_per_s"])
        print(f"  {name:<11} {reps}")
    print("\n== summary (medians) ==")
    print(
        f"  {'config':<11} {'samples/s':>9} "
        + " ".join(f"{'vs ' + r:>6}" for r in refs)
        + f" {'tok real/pad':>13} {'useful GF/s':>11} {'exec GF/s':>9} {'%peak':>5}"
        + f" {'warm-up':>7}  what"
    )
    for name, res in results.items():
        sps = medians[name]
        print(
            f"  {name:<11} {sps:9.2f} "
            + " ".join(f"{sps / medians[r]:6.2f}" for r in refs)
            + f" {res['real_tokens_per_sample']:6.1f}/{res['padded_tokens_per_sample']:<6.1f} "
            f"{res['useful_gflops']:11.1f} {res['executed_gflops']:9.1f} "
            f"{100 * res['executed_gflops'] / PEAK_FP32_GFLOPS:5.1f} {res['warmup_s']:6.1f}s"
            f"  {res['what']}"
        )
    first = next(iter(results.values()))
    print(
        f"\n  FLOP model: {first['useful_gflop_per_sample']:.2f} GFLOP per sample of "
        f"{first['real_tokens_per_sample']:.1f} real tokens; "
        f"peak estimate {PEAK_FP32_GFLOPS:.0f} GFLOP/s fp32 (exec counts padding too)"
    )
    if {"a", "b", "c"} <= set(medians):
        print(
            f"  targets: c/a = {medians['c'] / medians['a']:.2f} (need >= 2.0), "
            f"c/b = {medians['c'] / medians['b']:.2f} (need >= 1.3)"
        )
    if accuracy:
        acc_b, acc_c = accuracy["b"]["test_accuracy"], accuracy["c"]["test_accuracy"]
        delta = 100 * (acc_c - acc_b)
        print(
            f"  accuracy: b {acc_b:.4f}, c {acc_c:.4f}, "
            f"c - b = {delta:+.2f} points (need >= -0.5); full-data samples/s c/b = "
            f"{accuracy['c']['samples_per_s'] / accuracy['b']['samples_per_s']:.2f}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch
    import transformers

    import datasets
    from sentiment_hf.config.recipe import load_recipe

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    ablations = [a for a in args.ablations.split(",") if a]
    recipe = load_recipe(args.recipe, [f"data.source={args.data}"])
    epochs = recipe.training["num_train_epochs"] if args.epochs is None else args.epochs
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{platform.processor() or platform.machine()}"
    )
    speed_keys = (
        "bf16",
        "train_sampling_strategy",
        "dataloader_num_workers",
        "torch_compile",
        "optim",
    )
    settings = {k: recipe.training.get(k) for k in speed_keys}
    settings["pad_to_multiple_of"] = recipe.data.pad_to_multiple_of
    print(f"recipe {args.recipe}: speed settings {json.dumps(settings)}")
    started = time.time()
    args.tmp = tempfile.mkdtemp(prefix="train-throughput-")
    try:
        results = throughput_phase(args, configs(ablations, args.baselines))
        accuracy = accuracy_phase(args, epochs) if epochs else {}
    finally:
        shutil.rmtree(args.tmp, ignore_errors=True)
    report(results, accuracy)
    print(f"\n  total wall time {time.time() - started:.0f}s")
    payload = {
        "argv": sys.argv,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peak_fp32_gflops": PEAK_FP32_GFLOPS,
        "throughput": results,
        "accuracy": accuracy,
    }
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(f"  wrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
