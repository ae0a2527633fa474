"""Settings of one drift report: what to compare, how much of it, and when it counts as drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentiment_hf.errors import SentimentError
from sentiment_hf.monitoring.report import DriftThresholds


@dataclass
class DriftConfig:
    """Everything ``detect_drift`` needs; only ``model_dir`` and ``requests`` are required.

    ``requests`` is the SQLite request log of ``sentiment serve`` or its mirror (a ``gs://...``
    URL or a local folder of JSON-lines parts; ``storage_options`` go to fsspec). Only requests
    newer than ``since`` (``24h``, ``7d`` or an ISO date-time) count, at most the latest
    ``max_requests``, and fewer than ``min_requests`` is an error. They are compared with
    ``reference_size`` texts sampled from the training split of ``data`` (None: the run's
    recipe); the embedding test uses ``embedding_sample`` texts per side and ``permutations``
    permutations. The report goes to ``output_dir`` (None: MODEL_DIR/drift).
    """

    model_dir: Path
    requests: str | Path
    since: str | None = None
    data: str | None = None
    output_dir: Path | None = None
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    reference_size: int = 1000
    max_requests: int = 2000
    min_requests: int = 30
    embedding_sample: int = 300
    permutations: int = 500
    seed: int = 0
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model_dir = Path(self.model_dir)
        if self.output_dir is not None:
            self.output_dir = Path(self.output_dir)
        sizes = (self.reference_size, self.max_requests, self.embedding_sample)
        if min(sizes) < 2 or self.permutations < 1:
            raise SentimentError(
                "reference_size, max_requests and embedding_sample must be >= 2 "
                "and permutations >= 1"
            )
