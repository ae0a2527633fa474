"""ONNX Runtime backend for :class:`sentiment_hf.predict.Predictor` (fp32 or int8 model file).

``sentiment export MODEL_DIR [--quantize int8]`` writes ``model.onnx`` / ``model.int8.onnx``
beside the tokenizer; this backend runs them with session options tuned for CPU throughput.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.hardware import physical_cores

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"


def onnx_path(model_dir: str | Path, quantized: bool = False) -> Path:
    """Where the exported fp32 (or int8) ONNX model of ``model_dir`` lives."""
    return Path(model_dir) / (INT8_FILE if quantized else ONNX_FILE)


def session_options(threads: int | None = None) -> object:
    """ONNX Runtime options for throughput: all graph optimizations, one thread per core."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or physical_cores()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    return opts


class OnnxBackend:
    """Logits from an exported ONNX model: ``model.onnx``, or ``model.int8.onnx`` if quantized."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str | None = None,
        quantized: bool = False,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        path = onnx_path(model_dir, quantized)
        if not path.is_file():
            flag = " --quantize int8" if quantized else ""
            raise SentimentError(
                f"no {path.name} in {str(model_dir)!r}; create it with "
                f"`sentiment export {model_dir}{flag}`"
            )
        self.name = "onnx-int8" if quantized else "onnx"
        self.path = path
        providers = ["CPUExecutionProvider"]
        if device and device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise SentimentError(
                    "device 'cuda' asked for, but this onnxruntime has no CUDAExecutionProvider; "
                    "install onnxruntime-gpu or use device cpu"
                )
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=session_options(threads), providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise SentimentError(
                f"could not load {path}: {exc}".splitlines()[0]
                + f"; re-create it with `sentiment export {model_dir}`"
            ) from exc
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        ids = batch["input_ids"]
        feed = {
            name: batch[name].astype(np.int64, copy=False)
            if name in batch
            else np.zeros_like(ids, dtype=np.int64)  # token_type_ids the tokenizer left out
            for name in self.input_names
        }
        (logits,) = self.session.run(["logits"], feed)
        return np.asarray(logits, dtype=np.float32)


def onnx_fp32(
    model_dir: Path, device: str | None = None, threads: int | None = None
) -> OnnxBackend:
    """Backend factory for ``backend="onnx"``."""
    return OnnxBackend(model_dir, device=device, threads=threads)


def onnx_int8(
    model_dir: Path, device: str | None = None, threads: int | None = None
) -> OnnxBackend:
    """Backend factory for ``backend="onnx-int8"``."""
    return OnnxBackend(model_dir, device=device, quantized=True, threads=threads)
