"""Settings of the inference server (limits, runner, request log, drift report)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentiment_hf.errors import SentimentError
from sentiment_hf.hardware import physical_cores
from sentiment_hf.serve.requestlog import RequestLogConfig

#: Environment variable that carries a JSON ServeConfig to uvicorn worker processes.
CONFIG_ENV = "SENTIMENT_SERVE_CONFIG"


@dataclass
class ServeConfig:
    """Everything ``create_app`` needs; only ``model_dir`` is required.

    ``runner`` is "threadpool" (one model call per request; the default, faster for MiniLM on
    CPU as measured in docs/results.md) or "batch" (a micro-batching queue that joins up to
    ``micro_batch_size`` waiting texts per model call). Either runs ``inference_threads`` model
    calls at once (None: one per physical core), each with ``intra_op_threads`` threads inside
    it (None: the backend's default). A request carries at most ``max_texts_per_request`` texts
    of at most ``max_text_chars`` characters; ``predictor_batch_size`` is how many texts one
    forward pass of the predictor takes. ``request_log`` is the SQLite file (None disables
    logging); ``log_mirror`` an fsspec URL such as ``gs://bucket/requests`` with
    ``log_mirror_options`` for fsspec (e.g. ``endpoint_url``).
    """

    model_dir: Path
    backend: str = "torch"
    runner: str = "threadpool"
    inference_threads: int | None = None
    intra_op_threads: int | None = 1
    micro_batch_size: int = 8
    max_wait_ms: float = 0.0
    predictor_batch_size: int = 64
    max_text_chars: int = 5000
    max_texts_per_request: int = 64
    max_body_bytes: int = 1_000_000
    request_log: Path | None = Path("requests.db")
    log_retention_days: float | None = RequestLogConfig.retention_days
    log_max_rows: int | None = RequestLogConfig.max_rows
    log_flush_interval_s: float = RequestLogConfig.flush_interval_s
    log_mirror: str | None = RequestLogConfig.mirror
    log_mirror_interval_s: float = RequestLogConfig.mirror_interval_s
    log_mirror_options: dict[str, Any] = field(default_factory=dict)
    drift_report: Path | None = None

    def __post_init__(self) -> None:
        self.model_dir = Path(self.model_dir)
        for name in ("request_log", "drift_report"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))
        if self.inference_threads is None:
            self.inference_threads = physical_cores()
        positive = (
            "inference_threads",
            "micro_batch_size",
            "predictor_batch_size",
            "max_text_chars",
            "max_texts_per_request",
            "max_body_bytes",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise SentimentError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise SentimentError(f"intra_op_threads must be >= 1, got {self.intra_op_threads}")
        if self.max_wait_ms < 0:
            raise SentimentError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.log_mirror is not None and self.request_log is None:
            raise SentimentError("log_mirror needs a request log; set request_log to a SQLite path")

    def request_log_config(self) -> RequestLogConfig | None:
        """The settings of this server's request log (None when logging is off)."""
        if self.request_log is None:
            return None
        return RequestLogConfig(
            path=self.request_log,
            flush_interval_s=self.log_flush_interval_s,
            retention_days=self.log_retention_days,
            max_rows=self.log_max_rows,
            mirror=self.log_mirror,
            mirror_interval_s=self.log_mirror_interval_s,
            mirror_options=dict(self.log_mirror_options),
        )

    def own_process(self) -> None:
        """Settle what only a process that serves nothing but this config may set: torch's
        process-wide thread count, when torch runs the model (ONNX sessions set theirs)."""
        if self.backend == "torch" and self.intra_op_threads is not None:
            import torch

            torch.set_num_threads(self.intra_op_threads)

    def to_json(self) -> str:
        """JSON for :data:`CONFIG_ENV` (paths as strings)."""
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["endpoint_url=http://127.0.0.1:9023", "token=anon"]`` → a dict (YAML-typed values)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SentimentError(f"option {pair!r} is not KEY=VALUE")
        parsed = yaml.safe_load(value) if value else ""
        out[key.strip()] = value if isinstance(parsed, (dict, list)) or parsed is None else parsed
    return out
