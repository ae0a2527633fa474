"""ONNX Runtime backend for :class:`sentiment_hf.inference.predictor.Predictor` (fp32 or int8 model
file).

``sentiment export MODEL_DIR [--quantize int8]`` writes ``model.onnx`` / ``model.int8.onnx``
beside the tokenizer; this backend runs them with session options tuned for CPU throughput.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sentiment_hf.errors import SentimentError
from sentiment_hf.hardware import physical_cores
from sentiment_hf.rundir import ONNX_WEIGHTS_KEY, RunDir


def session_options(intra_op_threads: int | None = None) -> object:
    """ONNX Runtime options for throughput: all graph optimizations, ``intra_op_threads`` threads
    inside one model call (None: one per physical core)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = intra_op_threads or physical_cores()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    return opts


def stamp_weights(path: Path, weights_sha256: str) -> None:
    """Record in ``path``'s ONNX metadata which weights it was made from (read at load time)."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props[ONNX_WEIGHTS_KEY] = weights_sha256
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def check_provenance(session: Any, run: RunDir, path: Path) -> None:
    """Refuse an ONNX file that was not exported from the run's current weights."""
    recorded = session.get_modelmeta().custom_metadata_map.get(ONNX_WEIGHTS_KEY)
    if recorded == run.weights_sha256:
        return
    why = (
        "records no weights (exported by an older version)"
        if recorded is None
        else f"was exported from other weights (sha256 {recorded[:12]}, the run's are "
        f"{run.weights_sha256[:12]}: retrained since?)"
    )
    raise SentimentError(
        f"{path} {why}; re-export it with `sentiment export {run.path}` before using it"
    )


class OnnxBackend:
    """Logits from an exported ONNX model: ``model.onnx``, or ``model.int8.onnx`` if quantized."""

    def __init__(
        self,
        model_dir: str | Path | RunDir,
        device: str | None = None,
        quantized: bool = False,
        intra_op_threads: int | None = None,
        path: Path | None = None,
    ) -> None:
        import onnxruntime as ort

        # a RunDir passes through, so its weight hash is computed once per run
        run = model_dir if isinstance(model_dir, RunDir) else RunDir(Path(model_dir))
        model_dir = run.path
        # ``path``: another file exported from the run's weights (the int8 candidates of export)
        path = path or run.onnx_path(quantized)
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
                str(path), sess_options=session_options(intra_op_threads), providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise SentimentError(
                f"could not load {path}: {exc}".splitlines()[0]
                + f"; re-create it with `sentiment export {model_dir}`"
            ) from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        check_provenance(self.session, run, path)

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
