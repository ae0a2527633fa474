"""Export: ONNX export, int8 quantization and their parity checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiment_hf.lazy import lazy_getattr

if TYPE_CHECKING:
    from sentiment_hf.export.onnx import export_onnx

__all__ = ["export_onnx"]

__getattr__ = lazy_getattr(__name__, {"export_onnx": "onnx"})
