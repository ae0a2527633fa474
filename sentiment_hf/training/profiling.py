"""Profile a few training steps with ``torch.profiler``: a Chrome trace and a top-ops table.

``sentiment train RECIPE --profile`` adds :class:`ProfilerCallback` to the Trainer. It skips the
first optimizer step (allocation, one-off set-up), warms the profiler up on the second, records
the next ``steps`` and writes into ``RUN_DIR/profile/``:

- ``trace.json``: the Chrome/Perfetto trace (open in https://ui.perfetto.dev or chrome://tracing);
- ``top_ops.txt``: operators sorted by self time (CPU, or CUDA where a GPU ran them).

Training goes on unchanged after the recorded steps. Under torchrun every rank writes its own
files (``trace_rank1.json`` ...).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

PROFILE_DIR = "profile"
TRACE_FILE = "trace.json"
TOP_OPS_FILE = "top_ops.txt"


def profile_files(run_dir: str | Path, rank: int = 0) -> tuple[Path, Path]:
    """Paths of the trace and the top-ops table that a profiled run writes for ``rank``."""
    folder = Path(run_dir) / PROFILE_DIR
    suffix = f"_rank{rank}" if rank else ""
    return (
        folder / TRACE_FILE.replace(".json", f"{suffix}.json"),
        folder / TOP_OPS_FILE.replace(".txt", f"{suffix}.txt"),
    )


def top_ops_table(profiler: Any, row_limit: int = 30) -> str:
    """The profiler's operators sorted by self device time (GPU) or self CPU time."""
    averages = profiler.key_averages()
    on_device = any(getattr(e, "self_device_time_total", 0) > 0 for e in averages)
    sort_by = "self_device_time_total" if on_device else "self_cpu_time_total"
    return averages.table(sort_by=sort_by, row_limit=row_limit)


class ProfilerCallback(TrainerCallback):
    """Record ``steps`` optimizer steps (after one skipped and one warm-up step) to ``run_dir``."""

    def __init__(self, run_dir: str | Path, steps: int = 3, skip: int = 1, warmup: int = 1) -> None:
        if steps < 1:
            raise ValueError("steps must be >= 1")
        self.run_dir = Path(run_dir)
        self.steps, self.skip, self.warmup = steps, skip, warmup
        self.profiler: Any = None
        self.written: list[Path] = []
        self._rank = 0
        self._seen = 0  # optimizer steps since the profiler started

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        if self.profiler is not None or self.written:
            return
        self._rank = args.process_index
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        else:  # a CUDA build of torch on a CPU machine: kineto logs a spurious device error
            os.environ.setdefault("KINETO_LOG_LEVEL", "5")
        self.profiler = torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(
                wait=self.skip, warmup=self.warmup, active=self.steps, repeat=1
            ),
            on_trace_ready=self._write,
            record_shapes=True,
        )
        self.profiler.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.profiler is None:
            return
        self._seen += 1
        self.profiler.step()
        if self.written:
            self._close()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.profiler is None:
            return
        if self._seen <= self.skip + self.warmup:
            self._seen = -1  # no step recorded: drop what the profiler holds, write nothing
        self._close()
        if not self.written:
            log.warning(
                "--profile: training ended after %d step(s), before the profiler recorded one; "
                "it needs at least %d (raise training.max_steps or the data size)",
                state.global_step,
                self.skip + self.warmup + 1,
            )

    def _close(self) -> None:
        profiler, self.profiler = self.profiler, None
        profiler.stop()

    def _write(self, profiler: Any) -> None:
        if self._seen < 0:
            return
        trace, table = profile_files(self.run_dir, self._rank)
        trace.parent.mkdir(parents=True, exist_ok=True)
        profiler.export_chrome_trace(str(trace))
        table.write_text(top_ops_table(profiler) + "\n", encoding="utf-8")
        self.written = [trace, table]
        log.info("profile of %d step(s) written to %s", self.steps, trace.parent)
