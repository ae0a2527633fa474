"""Hub: the model card and pushing a run to the Hugging Face hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiment_hf.lazy import lazy_getattr

if TYPE_CHECKING:
    from sentiment_hf.hub.push import push_to_hub

__all__ = ["push_to_hub"]

__getattr__ = lazy_getattr(__name__, {"push_to_hub": "push"})
