"""The FastAPI inference app: ``create_app(model_dir, backend=...)``.

Endpoints (``serve/routes.py``): ``POST /predict``, ``POST /explain``, ``GET /health``,
``GET /ready``, ``GET /metrics``, ``GET /`` (the page) and the OpenAPI docs at ``/docs``. Every
4xx/5xx answer is JSON with a one-line ``detail`` (``serve/exceptions.py``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from sentiment_hf.errors import SentimentError
from sentiment_hf.serve.config import CONFIG_ENV, ServeConfig
from sentiment_hf.serve.exceptions import add_exception_handlers
from sentiment_hf.serve.metrics import ServeMetrics
from sentiment_hf.serve.middleware import BodyLimitMiddleware, MetricsMiddleware
from sentiment_hf.serve.requestlog import RequestLog
from sentiment_hf.serve.routes import add_routes
from sentiment_hf.serve.runner import build_runner
from sentiment_hf.serve.schemas import explain_request_model, predict_request_model

if TYPE_CHECKING:
    from sentiment_hf.rundir import RunDir


def load_predictor(config: ServeConfig, run: RunDir | None = None) -> Any:
    """The :class:`~sentiment_hf.inference.predictor.Predictor` of ``config``, ``intra_op_threads``
    threads
    inside each model call (torch: set around each call; `sentiment serve` sets it for its whole
    process at start, see :meth:`ServeConfig.own_process`). ``run``: the config's RunDir when
    already open (the predictor then reuses it)."""
    from sentiment_hf.inference.predictor import Predictor

    return Predictor(
        run if run is not None else config.model_dir,
        backend=config.backend,
        batch_size=config.predictor_batch_size,
        intra_op_threads=config.intra_op_threads,
    )


class ExplainService:
    """Explanations for the app, one at a time in their own thread (each costs about
    ``n_steps`` model passes; waiting requests queue), never on the event loop.

    Reuses the serving predictor when it is the torch backend; otherwise loads a torch one on
    the first request (integrated gradients need gradients, which ONNX models do not give).
    """

    def __init__(self, config: ServeConfig, predictor: Any) -> None:
        self.config = config
        self.predictor = predictor if config.backend == "torch" else None
        self.run = predictor.run if predictor is not None else None  # reused, not reopened
        self._explainer: Any = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="explain")

    def _explain(self, text: str) -> Any:
        from sentiment_hf.inference.explain import Explainer
        from sentiment_hf.inference.predictor import Predictor

        if self._explainer is None:  # only ever touched by the one explain thread
            predictor = self.predictor or Predictor(
                self.run if self.run is not None else self.config.model_dir,
                intra_op_threads=self.config.intra_op_threads,
            )
            self._explainer = Explainer(predictor)
        return self._explainer.explain([text])[0]

    async def explain(self, text: str) -> Any:
        """The :class:`~sentiment_hf.inference.explain.Explanation` of ``text``."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._explain, text)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the request log and the runner, warm the model up, then serve; stop on shutdown."""
    state = app.state
    log_config = state.config.request_log_config()
    if log_config is not None:
        state.request_log = RequestLog(log_config)
    await state.runner.start()
    await state.runner.run(["warm-up"])
    state.ready = True
    state.metrics.ready.set(1)
    try:
        yield
    finally:
        state.ready = False
        state.metrics.ready.set(0)
        await state.runner.stop()
        if state.request_log is not None:
            state.request_log.close()


def create_app(
    model_dir: str | Path | None = None,
    *,
    config: ServeConfig | None = None,
    run: RunDir | None = None,
    **options: Any,
) -> FastAPI:
    """Build the app: loads the model now (errors are :class:`SentimentError`), serves on startup.

    Pass either ``model_dir`` plus any :class:`ServeConfig` field as keyword
    (``backend="onnx-int8"``, ``request_log=None``, ...), or a ready ``config``; ``run``, the
    :class:`~sentiment_hf.rundir.RunDir` of the config's model directory when the caller has
    opened it already, is reused rather than opened again.
    """
    if config is None:
        if model_dir is None:
            raise SentimentError("create_app needs a model directory (or a ServeConfig)")
        config = ServeConfig(model_dir=Path(model_dir), **options)
    predictor = load_predictor(config, run)
    version = predictor.run.model_version  # the run the predictor opened: hashed once
    metrics = ServeMetrics(config.drift_report)
    metrics.model_info.labels(version, config.backend, str(config.model_dir)).set(1)
    app = FastAPI(
        title="sentiment_hf inference API",
        version=version,
        description=f"Sentiment classifier `{config.model_dir.name}` ({config.backend} backend).",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.metrics = metrics
    app.state.predictor = predictor
    app.state.runner = build_runner(
        config.runner,
        predictor.predict_proba,
        inference_threads=config.inference_threads,
        micro_batch_size=config.micro_batch_size,
        max_wait_ms=config.max_wait_ms,
        on_batch=metrics.observe_inference,
    )
    app.state.explainer = ExplainService(config, predictor)
    app.state.model_version = version
    app.state.request_log = None  # RequestLog | None: opened by the lifespan
    app.state.ready = False
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    add_exception_handlers(app)
    request_model = predict_request_model(config.max_text_chars, config.max_texts_per_request)
    add_routes(app.router, request_model, explain_request_model(config.max_text_chars))
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: the config comes from the environment."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise SentimentError(f"{CONFIG_ENV} is not set; start the server with `sentiment serve`")
    config = ServeConfig.from_json(raw)
    config.own_process()  # a worker process only serves
    return create_app(config=config)
