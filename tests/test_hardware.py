"""bf16 autocast only where the CPU has native bf16 units (AVX512_BF16 / AMX)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from conftest import REPO

from sentiment_hf.hardware import cpu_has_native_bf16
from sentiment_hf.recipe import load_recipe
from sentiment_hf.training import build_training_args


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="needs Linux /proc/cpuinfo")
def test_probe_agrees_with_the_kernels_cpu_flags() -> None:
    flags = _cpu_flags()
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_tile"} & flags)


def test_base_recipe_keeps_bf16_where_the_cpu_has_it(tmp_path: Path) -> None:
    recipe = load_recipe(REPO / "recipes" / "base.yaml", [f"training.output_dir={tmp_path}"])
    assert recipe.training["bf16"] is True
    args = build_training_args(recipe)
    assert args.bf16 is (torch.cuda.is_available() or cpu_has_native_bf16())


def test_bf16_falls_back_to_fp32_on_a_cpu_without_bf16_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Such a CPU cannot exist on this machine, so its feature probes are faked.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = load_recipe(REPO / "recipes" / "base.yaml", [f"training.output_dir={tmp_path}"])
    with caplog.at_level(logging.WARNING, logger="sentiment_hf.training"):
        args = build_training_args(recipe)
    assert args.bf16 is False
    assert "AVX512_BF16" in caplog.text
