"""Run the app under uvicorn: one process, or several workers sharing the port."""

from __future__ import annotations

import logging
import os
import tempfile

from sentiment_hf.errors import SentimentError
from sentiment_hf.serve.config import CONFIG_ENV, ServeConfig

log = logging.getLogger(__name__)


def serve(
    config: ServeConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Serve ``config`` on ``host:port`` until interrupted.

    One worker loads the model before binding the port, so a bad model directory or backend is a
    one-line :class:`SentimentError`. Several workers each load the model; they share the SQLite
    request log (WAL) and aggregate Prometheus metrics through ``PROMETHEUS_MULTIPROC_DIR``.
    """
    import uvicorn

    from sentiment_hf.predict import BACKENDS, check_model_dir

    if workers < 1:
        raise SentimentError(f"--workers must be >= 1, got {workers}")
    if not 0 <= port <= 65535:
        raise SentimentError(f"--port must be between 0 and 65535, got {port}")
    common = {"host": host, "port": port, "access_log": access_log, "log_level": log_level}
    if workers == 1:
        from sentiment_hf.serve.app import create_app

        uvicorn.run(create_app(config=config), **common)
        return
    check_model_dir(config.model_dir)
    if config.backend not in BACKENDS:
        raise SentimentError(
            f"unknown backend {config.backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    os.environ[CONFIG_ENV] = config.to_json()
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sentiment-prom-")
    uvicorn.run("sentiment_hf.serve.app:app_from_env", factory=True, workers=workers, **common)
