"""Gate on one metric of a `sentiment eval` JSON; summary table to $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    """Exit 1 when the metric is missing or below the minimum, 0 otherwise."""
    path = Path(os.environ["METRICS_FILE"])
    metric, minimum = os.environ["METRIC"], float(os.environ["MINIMUM"])
    if not path.is_file():
        print(f"::error::metrics file {path} not found")
        return 1
    metrics = json.loads(path.read_text(encoding="utf-8"))
    value = metrics.get(metric)
    if not isinstance(value, (int, float)):
        print(f"::error::{path} has no numeric {metric!r} (keys: {', '.join(sorted(metrics))})")
        return 1
    passed = value >= minimum
    rows = [f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()) if isinstance(v, (int, float))]
    verdict = "passed" if passed else "FAILED"
    summary = "\n".join(
        [
            f"### {os.environ.get('TITLE', 'Evaluation')}: {verdict}",
            f"Gate: `{metric}` = {value:.4f}, minimum {minimum:.4f}",
            "",
            "| metric | value |",
            "| --- | --- |",
            *rows,
            "",
        ]
    )
    print(summary)
    for key, target in (("GITHUB_STEP_SUMMARY", summary), ("GITHUB_OUTPUT", None)):
        out = os.environ.get(key)
        if out:
            with open(out, "a", encoding="utf-8") as handle:
                if target is None:
                    handle.write(f"value={value}\npassed={str(passed).lower()}\n")
                else:
                    handle.write(target + "\n")
    if not passed:
        print(f"::error::{metric} {value:.4f} is below the gate {minimum:.4f}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
