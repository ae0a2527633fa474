"""Export a trained model directory to ONNX (fp32, optionally int8) and check parity on real data.

``model.onnx`` (and ``model.int8.onnx``) land beside the tokenizer and config, with dynamic batch
and sequence axes, so ``Predictor(model_dir, backend="onnx")`` can run them. The parity check
runs the PyTorch model and every exported file over the recipe's test split and writes
``export_parity.json``: max |logit difference|, argmax agreement and accuracy of each.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.export.quantize import check_int8_weights, choose_int8
from sentiment_hf.fileio import write_atomic, write_json
from sentiment_hf.inference.onnx import stamp_weights
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.rundir import (
    INT8_FILE,
    ONNX_FILE,
    PARITY_FILE,
    RunDir,
    open_run,
)

log = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("int8",)
OPSET = 18


@dataclass
class ExportResult:
    """Files written by :func:`export_onnx` and the parity report (empty when skipped)."""

    onnx_path: Path
    int8_path: Path | None = None
    parity_path: Path | None = None
    parity: dict[str, Any] = field(default_factory=dict)


def model_input_names(model: Any, tokenizer: Any) -> list[str]:
    """Inputs the tokenizer produces that the model's forward accepts, in forward order.

    BERT-style models get ``token_type_ids``; DistilBERT-style ones do not.
    """
    params = list(inspect.signature(model.forward).parameters)
    produced = set(tokenizer.model_input_names)
    names = [
        p
        for p in params
        if p in produced and p in {"input_ids", "attention_mask", "token_type_ids"}
    ]
    if "input_ids" not in names:
        raise SentimentError(
            "the model does not take input_ids; only text classifiers can be exported"
        )
    return names


def _load_for_export(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoTokenizer

    from sentiment_hf.modeling import load_trained

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # eager attention traces to plain MatMul/Softmax, which onnxruntime fuses and quantizes well
    model = load_trained(model_dir, attn_implementation="eager")
    model.eval()
    return model, tokenizer


def export_fp32(model_dir: Path, out: Path, opset: int = OPSET) -> list[str]:
    """Trace the classifier to ``out`` with dynamic batch/sequence axes; returns its input names.

    The file's metadata records the SHA-256 of the weights it was traced from.
    """
    import torch

    model, tokenizer = _load_for_export(model_dir)
    names = model_input_names(model, tokenizer)

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, tensors, strict=True))).logits

    sample = tokenizer(
        ["a sample sentence to trace the graph with", "short one"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(sample[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}

    def write(tmp: Path) -> None:
        import onnx

        with torch.no_grad(), warnings.catch_warnings():
            # tracing notes about shapes frozen into the graph: the dynamic axes and the
            # parity check (torch vs ONNX on real texts of every length) are what count
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", module=r"torch\.onnx")
            torch.onnx.export(
                LogitsOnly(),
                args,
                str(tmp),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        onnx.checker.check_model(str(tmp))
        stamp_weights(tmp, RunDir(model_dir).weights_sha256)

    write_atomic(out, write)
    return names


def _test_split(run: RunDir, data: str | None, max_samples: int | None) -> Any:

    # a seeded shuffle before the cut to max_samples: the split is class-ordered
    loaded = run.load_splits(("test",), data, whole_file=True, max_samples={"test": max_samples})
    return loaded.splits["test"], loaded.source


def parity_report(
    model_dir: str | Path | RunDir,
    backends: list[str],
    data: str | None = None,
    max_samples: int | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Compare each ONNX backend's logits with PyTorch's on the test split of the run's data."""
    run = open_run(model_dir)
    # the reference runs on CPU like the ONNX files, so the comparison is like for like
    torch_pred = Predictor(
        run, backend="torch", batch_size=batch_size, device="cpu", progress="parity: torch"
    )
    dataset, source = _test_split(run, data, max_samples)
    texts, labels = dataset["text"], run.task.encode(dataset["label"])
    reference = torch_pred.predict_logits(texts, strict=False)
    task, policy = run.task, run.policy
    ref_probs = policy.probabilities(reference)
    ref_decided = policy.decide(ref_probs)[0]
    report: dict[str, Any] = {
        "split": "test",
        **task.report_fields(),
        "data_source": source,
        "samples": len(texts),
        "torch": {"accuracy": float(task.correct(labels, ref_decided).mean())},
    }
    for name in backends:
        predictor = Predictor(run, backend=name, batch_size=batch_size, progress=f"parity: {name}")
        logits = predictor.predict_logits(texts, strict=False)
        probs = policy.probabilities(logits)
        decided = policy.decide(probs)[0]
        report[name] = {
            "file": INT8_FILE if name == "onnx-int8" else ONNX_FILE,
            "max_abs_logit_diff": float(np.abs(logits - reference).max()),
            "mean_abs_logit_diff": float(np.abs(logits - reference).mean()),
            "max_abs_prob_diff": float(np.abs(probs - ref_probs).max()),
            # the same answer (label, or whole label set) under the run's policy
            "argmax_agreement_pct": float(task.correct(ref_decided, decided).mean() * 100),
            "accuracy": float(task.correct(labels, decided).mean()),
        }
    return report


def export_onnx(
    model_dir: str | Path,
    quantize: str | None = None,
    parity: bool = True,
    data: str | None = None,
    max_samples: int | None = None,
    per_channel: bool = True,
    reduce_range: bool = False,
    opset: int = OPSET,
    int8_weights: str = "auto",
    announce: Callable[[str], None] = log.info,
) -> ExportResult:
    """Write ``model.onnx`` (and ``model.int8.onnx`` with ``quantize="int8"``) into ``model_dir``.

    With ``parity`` (default) the exported files are checked against PyTorch on the test split
    of the run's recipe data (or ``data``) and the report is saved as ``export_parity.json``.
    ``int8_weights`` is :func:`sentiment_hf.export.quantize.choose_int8`'s ``weights`` (``auto``:
    the
    s8 or u8 file closer to fp32 on the validation split). ``announce`` gets a line as each
    step starts.
    """
    run = open_run(model_dir)
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise SentimentError(
            f"unknown --quantize {quantize!r}; choose {', '.join(QUANTIZE_CHOICES)}"
        )
    check_int8_weights(int8_weights)
    started = time.perf_counter()
    result = ExportResult(onnx_path=run.onnx_path())
    announce(f"exporting {result.onnx_path.name} (opset {opset})")
    export_fp32(run.path, result.onnx_path, opset=opset)
    backends = ["onnx"]
    if quantize == "int8":
        result.int8_path = run.onnx_path(quantized=True)
        announce(f"quantizing to {result.int8_path.name} (int8 weights: {int8_weights})")
        quantization = choose_int8(
            run, result.int8_path, per_channel, reduce_range, int8_weights, data=data
        )
        backends.append("onnx-int8")
    log.info("exported in %.1fs", time.perf_counter() - started)
    if parity:
        announce(f"checking parity with PyTorch: {', '.join(backends)}")
        result.parity = parity_report(run, backends, data=data, max_samples=max_samples)
        if quantize == "int8":
            result.parity["quantization"] = quantization
        result.parity_path = write_json(run.file(PARITY_FILE), result.parity)
    return result
