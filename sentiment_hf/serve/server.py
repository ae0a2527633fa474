"""Run the app under uvicorn: one process, or several workers sharing the port."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

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

    from sentiment_hf.predict import BACKENDS
    from sentiment_hf.rundir import RunDir

    if workers < 1:
        raise SentimentError(f"--workers must be >= 1, got {workers}")
    if not 0 <= port <= 65535:
        raise SentimentError(f"--port must be between 0 and 65535, got {port}")
    common = {"host": host, "port": port, "access_log": access_log, "log_level": log_level}
    config.own_process()  # this process only serves: torch's thread count is the config's
    if workers == 1:
        from sentiment_hf.serve.app import create_app

        uvicorn.run(create_app(config=config), **common)
        return
    RunDir.open(config.model_dir)
    if config.backend not in BACKENDS:
        raise SentimentError(
            f"unknown backend {config.backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    os.environ[CONFIG_ENV] = config.to_json()
    made_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made_dir = tempfile.mkdtemp(prefix="sentiment-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made_dir
    try:
        _run_workers(uvicorn, workers, common)
    finally:
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)


def _run_workers(uvicorn: Any, workers: int, common: dict[str, Any]) -> None:
    uvicorn.run(
        "sentiment_hf.serve.app:app_from_env",
        factory=True,
        workers=workers,
        # Workers import torch and load the model before answering the supervisor's health
        # ping; uvicorn's 5 s default kills and restarts them in a loop on a small machine.
        timeout_worker_healthcheck=300,
        **common,
    )
