"""What a drift report says: the thresholds it applied, each check, and the overall verdict.

Shared by :mod:`sentiment_hf.monitoring.drift` (which fills them) and
:mod:`sentiment_hf.monitoring.html` (which renders them), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sentiment_hf.errors import SentimentError


@dataclass
class DriftThresholds:
    """When a check counts as drift: ``p < alpha`` and the effect is at least the floor."""

    alpha: float = 0.01
    min_ks: float = 0.1
    oov_delta: float = 0.05
    label_shift: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise SentimentError(f"alpha must be between 0 and 1, got {self.alpha}")
        for name in ("min_ks", "oov_delta", "label_shift"):
            if not 0 <= getattr(self, name) <= 1:
                raise SentimentError(f"{name} must be between 0 and 1, got {getattr(self, name)}")


@dataclass
class DriftCheck:
    """One comparison: the reference and current summary, the test, and the verdict."""

    name: str
    description: str
    reference: float
    current: float
    statistic: float
    p_value: float
    rule: str
    drifted: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DriftReport:
    """All checks, the overall flag and the files written."""

    drift_detected: bool
    checks: list[DriftCheck]
    n_reference: int
    n_requests: int
    model_dir: str
    requests: str
    since: str | None
    created_at: str
    thresholds: DriftThresholds
    served: dict[str, Any]
    paths: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """One line per check, then the verdict (what ``sentiment drift`` prints)."""
        lines = []
        for check in self.checks:
            status = "DRIFT" if check.drifted else "ok"
            lines.append(
                f"{status:5}  {check.name:14} reference={check.reference:.4g} "
                f"current={check.current:.4g} p={check.p_value:.3g}"
            )
        verdict = "drift detected" if self.drift_detected else "no drift"
        lines.append(f"{verdict} ({self.n_requests} requests vs {self.n_reference} training texts)")
        return "\n".join(lines)
