"""Hardware probes: native bf16 (AVX512_BF16 / AMX), physical cores, the manifest's device."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from sentiment_hf import hardware
from sentiment_hf.hardware import cpu_has_native_bf16, device_info, physical_cores


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.linux_only  # reads /proc/cpuinfo
def test_probe_agrees_with_the_kernels_cpu_flags() -> None:
    flags = _cpu_flags()
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_tile"} & flags)


def test_physical_cores_of_this_process() -> None:
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= physical_cores() <= (allowed or 1)


def _cpuinfo(entries: list[tuple[int, str, str]]) -> str:
    return "\n".join(
        f"processor\t: {cpu}\nphysical id\t: {phys}\ncore id\t\t: {core}\n"
        for cpu, phys, core in entries
    )


@pytest.mark.linux_only  # os.sched_getaffinity
def test_physical_cores_counts_hyperthreads_once_and_only_allowed_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A made-up machine (2 sockets x 2 cores x 2 hyper-threads): this one may not look like it.
    entries = [(cpu, str(cpu // 4), str(cpu // 2 % 2)) for cpu in range(8)]
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(_cpuinfo(entries))
    monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert physical_cores() == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 4})  # 1 core + 1 thread
    assert physical_cores() == 2
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "missing")
    assert physical_cores() == 3  # no cpuinfo: every allowed CPU counts


def test_device_info_names_the_cpu_and_the_gpu_when_there_is_one() -> None:
    info = device_info()
    assert info["cpu_count"] == os.cpu_count()
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["cuda"] is torch.cuda.is_available()
    assert ("gpu" in info) is info["cuda"] and ("gpu_count" in info) is info["cuda"]


def test_the_old_homes_still_answer() -> None:
    from sentiment_hf import manifest, onnx_backend

    assert onnx_backend.physical_cores is physical_cores
    assert manifest.device_info is device_info


def test_cpu_speed_flags_reads_the_flags_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentiment_hf import hardware

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_int8\n")
    monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
    assert hardware.cpu_speed_flags() == ["avx2", "avx512f", "avx512_vnni", "amx_int8"]
    assert hardware.device_info()["cpu_flags"] == ["avx2", "avx512f", "avx512_vnni", "amx_int8"]
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "missing")
    assert hardware.cpu_speed_flags() == []
