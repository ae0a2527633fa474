"""Hardware probes: what this machine has (cores, CPU model, GPU) and what it runs fast.

Every probe of the machine lives here, so the settings that depend on it (bf16 autocast, ONNX
Runtime threads) and the run manifest's ``device`` record read the same answers.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")


def cpu_has_native_bf16() -> bool:
    """True when the CPU has AVX512_BF16 or AMX tiles, so bf16 autocast runs faster than fp32.

    Without them oneDNN emulates bf16 matmuls and autocast is slower than fp32. Uses torch's
    own CPU-feature probes; a torch without them is taken at its word (True).
    """
    import torch

    probes = [
        getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    available = [p for p in probes if p is not None]
    return not available or any(p() for p in available)


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once), at least 1."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        allowed = set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        cpu = phys = core = None
        for line in [*CPUINFO.read_text().splitlines(), ""]:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "processor":
                cpu = int(value)
            elif key == "physical id":
                phys = value
            elif key == "core id":
                core = value
            elif not key and cpu is not None:
                if cpu in allowed and core is not None:
                    cores.add((phys or "0", core))
                cpu = phys = core = None
    except (OSError, ValueError):
        cores = set()
    return max(1, len(cores) or len(allowed))


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op thread count at ``threads`` (None: as it is), then
    put the previous count back. torch has only a process-wide setting; a process that owns its
    cores (`sentiment serve`) sets it once at start (``ServeConfig.own_process``), which makes
    this a no-op there."""
    import torch

    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: CPU flags that decide how fast int8 and bf16 run (VNNI: exact, fast u8·s8 dot products)
SPEED_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
)


def cpu_speed_flags() -> list[str]:
    """Which of :data:`SPEED_FLAGS` this CPU reports (Linux ``/proc/cpuinfo``; else empty)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in SPEED_FLAGS if f in have]
    return []


def device_info() -> dict[str, Any]:
    """CPU model, core count and speed-relevant flags, and the GPU when there is one."""
    import torch

    cpu = platform.processor() or None
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_speed_flags(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info
