"""Serve a trained model over HTTP: FastAPI app, request log, metrics, web page."""

from sentiment_hf.serve.app import create_app
from sentiment_hf.serve.config import ServeConfig
from sentiment_hf.serve.requestlog import RequestLog, RequestLogConfig, read_requests
from sentiment_hf.serve.server import serve

__all__ = ["RequestLog", "RequestLogConfig", "ServeConfig", "create_app", "read_requests", "serve"]
