"""Dynamic int8 quantization of an exported model, and the choice of its weight type.

ONNX Runtime multiplies uint8 activations by int8 (``s8``) or uint8 (``u8``) weights. On CPUs
with VNNI (AVX-512 VNNI, AVX-VNNI, AMX) the s8 kernel is exact and the fast one. On AVX2 CPUs
without VNNI it sums pairs of u8·s8 products in 16 bits, which saturates on large activations,
so a model with large activations loses accuracy; the u8 kernel does not saturate there (and is
~10 % slower). ``weights="auto"`` quantizes both and keeps the one whose logits stay closer to
the fp32 file's on the validation split (no labels needed, far less noisy than accuracy).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.fileio import write_atomic
from sentiment_hf.inference.onnx import OnnxBackend, stamp_weights
from sentiment_hf.inference.predictor import Predictor
from sentiment_hf.rundir import ONNX_WEIGHTS_KEY, RunDir

log = logging.getLogger(__name__)

#: int8 weight types: "s8" (signed), "u8" (unsigned), or "auto" (the closer to fp32 on validation)
INT8_WEIGHTS = ("auto", "s8", "u8")
#: validation texts compared when choosing (a cap keeps the export quick on big data sets)
CHOICE_MAX_TEXTS = 2000


class _DropAdvice(logging.Filter):
    """Drops onnxruntime's "consider pre-processing before quantization" root-logger advice
    (shape inference does not apply to a dynamically quantized transformer)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    advice = _DropAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def check_int8_weights(weights: str) -> None:
    """Refuse an unknown int8 weight type before anything is written."""
    if weights not in INT8_WEIGHTS:
        raise SentimentError(
            f"unknown --int8-weights {weights!r}; choose {', '.join(INT8_WEIGHTS)}"
        )


def quantize_int8(
    fp32: Path,
    out: Path,
    per_channel: bool = True,
    reduce_range: bool = False,
    weights: str = "s8",
) -> Path:
    """Dynamic int8 quantization of the MatMul/Gemm weights (activations quantized at run time).

    Per-channel weight scales are the default: on the RT MiniLM run they kept accuracy within
    0.1 point of fp32 at the same speed; ``reduce_range`` (7-bit) was faster but lost ~1.9 points.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if weights not in ("s8", "u8"):
        raise SentimentError(f"unknown int8 weight type {weights!r}; choose s8 or u8")
    source = {p.key: p.value for p in onnx.load(str(fp32), load_external_data=False).metadata_props}

    def write(tmp: Path) -> None:
        with _without_preprocessing_advice():
            _quantize(tmp)

    def _quantize(tmp: Path) -> None:
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
        if ONNX_WEIGHTS_KEY in source:  # the int8 file belongs to the same weights
            stamp_weights(tmp, source[ONNX_WEIGHTS_KEY])

    return write_atomic(out, write)


def _choice_texts(run: RunDir, data: str | None) -> tuple[list[str], str]:
    """Validation texts of the run's data (the test split only when there is no validation)."""
    from sentiment_hf.data.load import MissingSplit

    for split in ("validation", "test"):
        try:
            loaded = run.load_splits(
                (split,), data, whole_file=True, max_samples={split: CHOICE_MAX_TEXTS}
            )
        except MissingSplit:
            continue
        if split == "test":
            log.warning("no validation split in %s: int8 weights chosen on test", loaded.source)
        return list(loaded.splits[split]["text"]), split
    source = run.data_config(data).source
    raise SentimentError(f"data source {source!r} has neither a validation nor a test split")


def choose_int8(
    run: RunDir,
    out: Path,
    per_channel: bool = True,
    reduce_range: bool = False,
    weights: str = "auto",
    data: str | None = None,
) -> dict[str, Any]:
    """Write the int8 model to ``out``; with ``weights="auto"`` the s8 or u8 file closer to fp32
    (s8, with a warning, when the run's data cannot be read to choose on).

    Returns what was done, for the parity report: the options, the weight type kept and, for
    ``auto``, each candidate's mean |logit - fp32 logit| and argmax agreement on the split used.
    """
    check_int8_weights(weights)
    record: dict[str, Any] = {"per_channel": per_channel, "reduce_range": reduce_range}
    fp32 = run.onnx_path()
    if weights != "auto":
        quantize_int8(fp32, out, per_channel, reduce_range, weights)
        return {**record, "weights": weights}
    try:
        texts, split = _choice_texts(run, data)
    except SentimentError as exc:  # e.g. exporting where the training data is not mounted
        log.warning("int8 weights s8: no data to choose on (%s); see --int8-weights", exc)
        quantize_int8(fp32, out, per_channel, reduce_range, "s8")
        return {**record, "weights": "s8", "chosen_on": None, "why": str(exc)}
    predictor = Predictor(run, backend="onnx", progress="int8: fp32 reference")
    reference = predictor.predict_logits(texts, strict=False)
    candidates: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=run.path) as tmp:
        for kind in ("s8", "u8"):
            path = quantize_int8(fp32, Path(tmp) / f"{kind}.onnx", per_channel, reduce_range, kind)
            predictor.backend = OnnxBackend(run.path, path=path)
            predictor.progress = f"int8: {kind} weights"
            logits = predictor.predict_logits(texts, strict=False)
            candidates[kind] = {
                "mean_abs_logit_diff": float(np.abs(logits - reference).mean()),
                "argmax_agreement_pct": float(
                    (logits.argmax(-1) == reference.argmax(-1)).mean() * 100
                ),
            }
        # ties go to s8, the faster kernel on every CPU
        kept = min(candidates, key=lambda k: (candidates[k]["mean_abs_logit_diff"], k != "s8"))
        Path(tmp, f"{kept}.onnx").replace(out)
    log.info("int8 weights: %s (closer to fp32 on %d %s texts)", kept, len(texts), split)
    return {
        **record,
        "weights": kept,
        "chosen_on": {"split": split, "texts": len(texts), "by": "mean |logit - fp32 logit|"},
        "candidates": candidates,
    }
