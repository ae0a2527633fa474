"""What the CPU can do fast, for settings that only pay off on some hardware."""

from __future__ import annotations


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
