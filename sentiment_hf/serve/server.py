"""Run the app under uvicorn: one process, or several workers sharing the port."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import tempfile
from typing import TYPE_CHECKING, Any

from sentiment_hf.errors import SentimentError
from sentiment_hf.serve.config import CONFIG_ENV, ServeConfig

if TYPE_CHECKING:
    from sentiment_hf.rundir import RunDir

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

    The run directory and the port are checked first, so a bad run, a port in use or an address
    this machine lacks is a one-line :class:`SentimentError` before the model loads. One worker
    binds the port, loads the model and serves on that socket. Several workers each load the
    model in their own process; they share the SQLite request log (WAL) and aggregate
    Prometheus metrics through ``PROMETHEUS_MULTIPROC_DIR``.
    """
    import uvicorn

    from sentiment_hf.inference.predictor import BACKENDS
    from sentiment_hf.rundir import RunDir

    if workers < 1:
        raise SentimentError(f"--workers must be >= 1, got {workers}")
    if not 0 <= port <= 65535:
        raise SentimentError(f"--port must be between 0 and 65535, got {port}")
    run = RunDir.open(config.model_dir)
    if config.backend not in BACKENDS:
        raise SentimentError(
            f"unknown backend {config.backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    common = {"host": host, "port": port, "access_log": access_log, "log_level": log_level}
    sock = bind(host, port)
    if workers == 1:
        _serve_one(uvicorn, config, run, sock, common)
        return
    # uvicorn's supervisor binds the port itself before it starts the workers: the check above
    # gave the clear error; the port is free again for that bind an instant later
    sock.close()
    config.own_process()  # this process only serves: torch's thread count is the config's
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


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as uvicorn binds one (``SO_REUSEADDR``), not yet
    listening; every reason it cannot be bound is one clear :class:`SentimentError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _bind_error(host, port, exc) from exc
    return sock


def _bind_error(host: str, port: int, exc: OSError) -> SentimentError:
    if exc.errno == errno.EADDRINUSE:
        return SentimentError(f"port {port} on {host} is already in use; pick another with --port")
    if exc.errno == errno.EACCES:
        return SentimentError(
            f"port {port} on {host} needs privileges this user lacks (ports below 1024 are "
            "reserved); pick one above 1023 with --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return SentimentError(
            f"cannot bind {host}:{port}: it is not an address of this machine; use --host "
            "127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        )
    if isinstance(exc, socket.gaierror):
        return SentimentError(
            f"--host {host!r} is not an address or a host name this machine resolves; use "
            "--host 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        )
    return SentimentError(f"cannot bind {host}:{port}: {exc.strerror or exc}")


def _serve_one(
    uvicorn: Any, config: ServeConfig, run: RunDir, sock: socket.socket, common: dict
) -> None:
    """Load the model of ``run`` (opened by the caller), then serve it in this process on
    ``sock`` (already bound)."""
    from sentiment_hf.serve.app import create_app

    class BoundServer(uvicorn.Server):
        """uvicorn's server on a socket bound before the model loaded. uvicorn logs where it
        listens only for sockets it binds itself: logged here in its words, the port read
        from the socket (port 0 asks for any free one)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            address = sock.getsockname()
            shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, address[1]
            )

    try:
        config.own_process()  # this process only serves: torch's thread count is the config's
        app = create_app(config=config, run=run)
        server = BoundServer(uvicorn.Config(app, **common))
        with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl+C is a clean stop
            server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE; the app logged why


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
