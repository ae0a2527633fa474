"""The FastAPI inference app: ``create_app(model_dir, backend=...)``.

Endpoints: ``POST /predict``, ``POST /explain``, ``GET /health``, ``GET /ready``, ``GET /metrics``,
``GET /`` (the page) and the OpenAPI docs at ``/docs``. Every 4xx/5xx answer is JSON with a
one-line ``detail``.
"""

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentiment_hf.errors import SentimentError
from sentiment_hf.longtext import WindowCapExceeded
from sentiment_hf.serve.config import CONFIG_ENV, ServeConfig
from sentiment_hf.serve.metrics import ServeMetrics
from sentiment_hf.serve.middleware import BodyLimitMiddleware, MetricsMiddleware
from sentiment_hf.serve.requestlog import LoggedPrediction, RequestLog
from sentiment_hf.serve.runner import build_runner
from sentiment_hf.serve.schemas import (
    ErrorBody,
    ExplainResponse,
    LabelScore,
    PredictResponse,
    explain_request_model,
    predict_request_model,
)

log = logging.getLogger(__name__)

PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'"
)


@cache
def page_html() -> str:
    """The one-file web page shipped in the package (inline CSS and JS, no external assets)."""
    return resources.files("sentiment_hf.serve").joinpath("static/index.html").read_text("utf-8")


def load_predictor(config: ServeConfig) -> Any:
    """The :class:`~sentiment_hf.inference.predictor.Predictor` of ``config``, ``intra_op_threads``
    threads
    inside each model call (torch: set around each call; `sentiment serve` sets it for its whole
    process at start, see :meth:`ServeConfig.own_process`)."""
    from sentiment_hf.inference.predictor import Predictor

    return Predictor(
        config.model_dir,
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
        self._explainer: Any = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="explain")

    def _explain(self, text: str) -> Any:
        from sentiment_hf.inference.explain import Explainer
        from sentiment_hf.inference.predictor import Predictor

        if self._explainer is None:  # only ever touched by the one explain thread
            predictor = self.predictor or Predictor(
                self.config.model_dir, intra_op_threads=self.config.intra_op_threads
            )
            self._explainer = Explainer(predictor)
        return self._explainer.explain([text])[0]

    async def explain(self, text: str) -> Any:
        """The :class:`~sentiment_hf.inference.explain.Explanation` of ``text``."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._explain, text)


def _error(status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body = ErrorBody(detail=detail, errors=errors).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status)


def _validation_summary(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    clean = []
    for err in errors:
        kind = str(err.get("type", ""))
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "malformed JSON")
            where = f" at character {loc[0]}" if loc else ""
            loc, msg = [], f"the body is not valid JSON ({reason}{where})"
        elif kind == "model_attributes_type" and not loc:
            msg = (
                'the body must be a JSON object such as {"text": "..."} or '
                '{"texts": ["...", ...]}, sent with content-type application/json'
            )
        clean.append({"loc": loc, "msg": msg, "type": kind})
    first = clean[0] if clean else {"loc": [], "msg": "invalid request"}
    where = f" at {'.'.join(first['loc'])}" if first["loc"] else ""
    more = f" (and {len(clean) - 1} more)" if len(clean) > 1 else ""
    return f"invalid request{where}: {first['msg']}{more}", clean


def create_app(
    model_dir: str | Path | None = None, *, config: ServeConfig | None = None, **options: Any
) -> FastAPI:
    """Build the app: loads the model now (errors are :class:`SentimentError`), serves on startup.

    Pass either ``model_dir`` plus any :class:`ServeConfig` field as keyword
    (``backend="onnx-int8"``, ``request_log=None``, ...), or a ready ``config``.
    """
    if config is None:
        if model_dir is None:
            raise SentimentError("create_app needs a model directory (or a ServeConfig)")
        config = ServeConfig(model_dir=Path(model_dir), **options)
    predictor = load_predictor(config)
    version = predictor.run.model_version  # the run the predictor opened: hashed once
    metrics = ServeMetrics(config.drift_report)
    metrics.model_info.labels(version, config.backend, str(config.model_dir)).set(1)
    request_model = predict_request_model(config.max_text_chars, config.max_texts_per_request)
    explain_model = explain_request_model(config.max_text_chars)
    explainer = ExplainService(config, predictor)

    def on_batch(n: int, seconds: float) -> None:
        metrics.inference_batch.observe(n)
        metrics.inference_latency.observe(seconds)

    runner = build_runner(
        config.runner,
        predictor.predict_proba,
        inference_threads=config.inference_threads,
        micro_batch_size=config.micro_batch_size,
        max_wait_ms=config.max_wait_ms,
        on_batch=on_batch,
    )
    state: dict[str, Any] = {"ready": False, "log": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_config = config.request_log_config()
        if log_config is not None:
            state["log"] = RequestLog(log_config)
        await runner.start()
        await runner.run(["warm-up"])
        state["ready"] = True
        metrics.ready.set(1)
        try:
            yield
        finally:
            state["ready"] = False
            metrics.ready.set(0)
            await runner.stop()
            if state["log"] is not None:
                state["log"].close()

    app = FastAPI(
        title="sentiment_hf inference API",
        version=version,
        description=f"Sentiment classifier `{config.model_dir.name}` ({config.backend} backend).",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.metrics = metrics
    app.state.predictor = predictor
    app.state.runner = runner
    app.state.explainer = explainer
    app.state.model_version = version
    app.state.serve_state = state
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_summary(list(exc.errors()))
        return _error(422, detail, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if detail == "There was an error parsing the body":  # e.g. JSON nested too deeply
            detail = "the body could not be parsed as JSON (malformed or nested too deeply)"
        response = _error(exc.status_code, detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(SentimentError)
    async def _on_sentiment_error(request: Request, exc: SentimentError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(WindowCapExceeded)
    async def _on_too_long(request: Request, exc: WindowCapExceeded) -> JSONResponse:
        return _error(413, str(exc))

    @app.exception_handler(Exception)
    async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal server error; see the server log")

    errors_doc = {
        400: {"model": ErrorBody, "description": "Body not UTF-8, or a bad Content-Length."},
        413: {
            "model": ErrorBody,
            "description": "Body larger than max_body_bytes, or a text past the run's "
            "model.long_text.max_windows windows.",
        },
        422: {"model": ErrorBody, "description": "Invalid body: types, empty text, limits."},
    }

    @app.post("/predict", response_model=PredictResponse, responses=errors_doc)
    async def predict(body: request_model) -> PredictResponse:  # type: ignore[valid-type]
        """Label, score and all probabilities for one text (`text`) or several (`texts`)."""
        texts = body.items()
        started = time.perf_counter()
        probs = await runner.run(texts)
        latency_ms = (time.perf_counter() - started) * 1000.0
        preds = []
        for p in predictor.decide(texts, probs):
            preds.append(
                LabelScore(
                    label=p.label,
                    labels=p.labels,
                    score=p.score,
                    probabilities=p.probabilities,
                    abstained=p.abstained,
                )
            )
            # multi-label: one count per label given, "(none)" when no label reaches its threshold
            for name in (p.labels or ["(none)"]) if predictor.policy.multi_label else [p.label]:
                metrics.predictions.labels(name).inc()
        metrics.request_batch.observe(len(texts))
        request_log: RequestLog | None = state["log"]
        if request_log is not None:
            now = time.time()
            dropped = request_log.append(
                [
                    LoggedPrediction(
                        now,
                        text,
                        p.label,
                        p.score,
                        p.probabilities,
                        latency_ms,
                        version,
                        config.backend,
                    )
                    for text, p in zip(texts, preds, strict=True)
                ]
            )
            if dropped:
                metrics.log_dropped.inc(dropped)
        return PredictResponse(
            model_version=version,
            backend=config.backend,
            multi_label=predictor.policy.multi_label,
            predictions=preds,
        )

    @app.post("/explain", response_model=ExplainResponse, responses=errors_doc)
    async def explain(body: explain_model) -> ExplainResponse:  # type: ignore[valid-type]
        """Each word's contribution to the predicted label's probability (integrated gradients)."""
        item = await explainer.explain(body.text)
        return ExplainResponse(
            model_version=version,
            **{k: v for k, v in item.to_dict().items() if k in ExplainResponse.model_fields},
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": ErrorBody}}, response_model=None)
    async def ready() -> dict[str, Any] | JSONResponse:
        """Readiness: the model is loaded and warmed up and the request log is running."""
        if not state["ready"]:
            return _error(503, "model not ready (starting up or shutting down)")
        return {
            "status": "ready",
            "model_version": version,
            "backend": config.backend,
            "labels": predictor.labels,
            "multi_label": predictor.policy.multi_label,
            "request_log": str(config.request_log) if config.request_log else None,
        }

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html(), headers={"Content-Security-Policy": PAGE_CSP})

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: the config comes from the environment."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise SentimentError(f"{CONFIG_ENV} is not set; start the server with `sentiment serve`")
    config = ServeConfig.from_json(raw)
    config.own_process()  # a worker process only serves
    return create_app(config=config)
