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


@pytest.mark.linux_only  # sysfs, os.sched_getaffinity
def test_physical_cores_of_this_process_agree_with_the_kernels_topology() -> None:
    """A second source the probe does not read: sysfs names each allowed CPU's package and core."""

    def core(cpu: int) -> tuple[str, str]:
        where = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        return (where / "physical_package_id").read_text(), (where / "core_id").read_text()

    assert physical_cores() == len({core(cpu) for cpu in os.sched_getaffinity(0)})


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


def test_torch_threads_holds_only_inside_its_block() -> None:
    before = torch.get_num_threads()
    other = 1 if before > 1 else 2
    with hardware.torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with hardware.torch_threads(None):
        assert torch.get_num_threads() == before


def test_device_info_names_the_cpu_and_the_gpu_when_there_is_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = torch.get_num_threads()
    with hardware.torch_threads(1 if threads > 1 else 2):  # read now, not cached at import
        assert device_info()["torch_threads"] == torch.get_num_threads() != threads
    # no GPU here: torch's CUDA probes are mocked to answer as on a 2-GPU machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    info = device_info()
    assert info["cuda"] is False and "gpu" not in info and "gpu_count" not in info
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    info = device_info()
    assert (info["cuda"], info["gpu"], info["gpu_count"]) == (True, "NVIDIA H100 80GB HBM3", 2)
    assert info["cpu_count"] == os.cpu_count()


def test_the_old_homes_still_answer() -> None:
    from sentiment_hf.inference import onnx as onnx_backend
    from sentiment_hf.training import manifest

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
