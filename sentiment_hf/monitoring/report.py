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
    """One comparison: the reference and current summary, the test, and the verdict.

    ``description`` says what ``reference`` and ``current`` are, ``unit`` how they read
    (``characters``, ``share`` of 0-1 printed as a percentage, ``probability`` of 0-1, or ``""``
    for a bare number), ``reference_source`` where the reference value comes from (None: the
    check has no reference value, its statistic is the measure), and ``statistic_name`` what
    ``statistic`` is.
    """

    name: str
    description: str
    reference: float
    current: float
    statistic: float
    p_value: float
    rule: str
    drifted: bool
    details: dict[str, Any] = field(default_factory=dict)
    unit: str = ""
    reference_source: str | None = "training sample"
    statistic_name: str = "statistic"


def format_value(value: float, unit: str) -> str:
    """``value`` with its unit: shares as percentages, characters and probabilities labelled."""
    if unit == "share":
        return f"{100 * value:.1f} %"
    if unit == "characters":
        return f"{value:.1f} characters"
    if unit == "probability":
        return f"{value:.3f}"
    return f"{value:.4g}"


def describe_check(check: DriftCheck) -> list[str]:
    """Two lines that say what the check measured, in which unit, and when it counts as drift."""
    status = "DRIFT" if check.drifted else "ok"
    if check.reference_source is None:
        values = ""
    else:
        values = (
            f": {check.reference_source} {format_value(check.reference, check.unit)}, "
            f"requests {format_value(check.current, check.unit)}"
        )
    return [
        f"{status:5}  {check.name} — {check.description}{values}",
        f"{'':5}  {check.statistic_name} = {check.statistic:.4g}, p = {check.p_value:.3g}; "
        f"drift when {check.rule}",
    ]


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
        """What ``sentiment drift`` prints: the samples compared, two lines per check (what was
        measured, in which unit, the test and its rule), then the verdict."""
        since = f" (--since {self.since})" if self.since else ""
        lines = [
            f"compared {self.n_requests} logged requests{since} with {self.n_reference} texts "
            f"sampled from the training split (p-values: small means the two differ; each "
            f"check also needs its effect floor)"
        ]
        for check in self.checks:
            lines += describe_check(check)
        verdict = "drift detected" if self.drift_detected else "no drift"
        exit_code = 1 if self.drift_detected else 0
        lines.append(
            f"{verdict} ({self.n_requests} requests vs {self.n_reference} training texts); "
            f"exit code {exit_code}"
        )
        return "\n".join(lines)
