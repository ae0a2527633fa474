"""Serve a trained model over HTTP: FastAPI app, request log, metrics, web page.

``create_app`` is imported on first use, so the settings (``ServeConfig``, whose defaults the
``sentiment`` CLI shows) load without FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiment_hf.lazy import lazy_getattr
from sentiment_hf.serve.config import ServeConfig
from sentiment_hf.serve.requestlog import RequestLog, RequestLogConfig, read_requests
from sentiment_hf.serve.server import serve

if TYPE_CHECKING:
    from sentiment_hf.serve.app import create_app

__all__ = ["RequestLog", "RequestLogConfig", "ServeConfig", "create_app", "read_requests", "serve"]

__getattr__ = lazy_getattr(__name__, {"create_app": "app"})
