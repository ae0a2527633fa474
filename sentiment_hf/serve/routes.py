"""The app's endpoints. Each handler reads what it needs from ``request.app.state`` (set by
:func:`~sentiment_hf.serve.app.create_app`): ``config``, ``predictor``, ``runner``, ``metrics``,
``explainer``, ``model_version``, ``request_log`` (None when logging is off or the app has not
started) and ``ready``.

:func:`add_routes` puts them on the app's own ``APIRouter`` (``app.router``) rather than on a
router the app includes: FastAPI 0.165 keeps an included router as one nested entry of
``app.routes``, and callers (the Cloud Run check among them) read each route's ``path``.
``/predict`` and ``/explain`` validate their bodies with models built from the app's limits, so
their two handlers are made per app; each only hands its body to a module-level function.
"""

import time
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import State

from sentiment_hf.serve.exceptions import error_response
from sentiment_hf.serve.logschema import LoggedPrediction
from sentiment_hf.serve.schemas import ErrorBody, ExplainResponse, LabelScore, PredictResponse

PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'"
)
ERRORS_DOC: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Body not UTF-8, or a bad Content-Length."},
    413: {
        "model": ErrorBody,
        "description": "Body larger than max_body_bytes, or a text past the run's "
        "model.long_text.max_windows windows.",
    },
    422: {"model": ErrorBody, "description": "Invalid body: types, empty text, limits."},
}


@cache
def page_html() -> str:
    """The one-file web page shipped in the package (inline CSS and JS, no external assets)."""
    return resources.files("sentiment_hf.serve").joinpath("static/index.html").read_text("utf-8")


def add_routes(router: APIRouter, request_model: type, explain_model: type) -> None:
    """Put every endpoint on ``router``; ``/predict`` and ``/explain`` bodies are validated by
    ``request_model`` and ``explain_model``."""

    @router.post("/predict", response_model=PredictResponse, responses=ERRORS_DOC)
    async def predict(request: Request, body: request_model) -> PredictResponse:  # type: ignore[valid-type]
        """Label, score and all probabilities for one text (`text`) or several (`texts`)."""
        return await predict_texts(request.app.state, body.items())

    @router.post("/explain", response_model=ExplainResponse, responses=ERRORS_DOC)
    async def explain(request: Request, body: explain_model) -> ExplainResponse:  # type: ignore[valid-type]
        """Each word's contribution to the predicted label's probability (integrated gradients)."""
        return await explain_text(request.app.state, body.text)

    router.add_api_route("/health", health, methods=["GET"])
    router.add_api_route(
        "/ready", ready, methods=["GET"], responses={503: {"model": ErrorBody}}, response_model=None
    )
    router.add_api_route("/metrics", prometheus_metrics, methods=["GET"], include_in_schema=False)
    router.add_api_route(
        "/", page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False
    )


async def predict_texts(state: State, texts: list[str]) -> PredictResponse:
    """The ``/predict`` answer for ``texts``: run the model, count, log the rows."""
    started = time.perf_counter()
    probs = await state.runner.run(texts)
    latency_ms = (time.perf_counter() - started) * 1000.0
    preds = _label_scores(state, texts, probs)
    state.metrics.request_batch.observe(len(texts))
    _log_predictions(state, texts, preds, latency_ms)
    return PredictResponse(
        model_version=state.model_version,
        backend=state.config.backend,
        multi_label=state.predictor.run.task.multi_label,
        predictions=preds,
    )


def _label_scores(state: State, texts: list[str], probs: Any) -> list[LabelScore]:
    """The predictor's decisions on ``probs`` as answers, each label given counted."""
    predictor, metrics = state.predictor, state.metrics
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
        # one count per label given; an abstention counts as its label, no label as "(none)"
        for name in p.labels or [p.label or "(none)"]:
            metrics.predictions.labels(name).inc()
    return preds


def _log_predictions(
    state: State, texts: list[str], preds: list[LabelScore], latency_ms: float
) -> None:
    """Queue one request-log row per text (when the log is on); count the rows dropped."""
    if state.request_log is None:
        return
    now = time.time()
    rows = [
        LoggedPrediction(
            now,
            text,
            p.label,
            p.score,
            p.probabilities,
            latency_ms,
            state.model_version,
            state.config.backend,
        )
        for text, p in zip(texts, preds, strict=True)
    ]
    dropped = state.request_log.append(rows)
    if dropped:
        state.metrics.log_dropped.inc(dropped)


async def explain_text(state: State, text: str) -> ExplainResponse:
    """The ``/explain`` answer for ``text`` (computed off the event loop)."""
    item = await state.explainer.explain(text)
    return ExplainResponse(
        model_version=state.model_version,
        **{k: v for k, v in item.to_dict().items() if k in ExplainResponse.model_fields},
    )


async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


async def ready(request: Request) -> dict[str, Any] | JSONResponse:
    """Readiness: the model is loaded and warmed up and the request log is running."""
    state = request.app.state
    if not state.ready:
        return error_response(503, "model not ready (starting up or shutting down)")
    config, predictor = state.config, state.predictor
    return {
        "status": "ready",
        "model_version": state.model_version,
        "backend": config.backend,
        "labels": predictor.labels,
        "multi_label": predictor.run.task.multi_label,
        "request_log": str(config.request_log) if config.request_log else None,
    }


async def prometheus_metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


async def page() -> HTMLResponse:
    return HTMLResponse(page_html(), headers={"Content-Security-Policy": PAGE_CSP})
