"""The app's exception handlers: every 4xx/5xx answer is JSON with a one-line ``detail``
(validation errors also list each ``errors`` item)."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentiment_hf.errors import SentimentError
from sentiment_hf.longtext import WindowCapExceeded
from sentiment_hf.serve.schemas import ErrorBody

log = logging.getLogger(__name__)


def error_response(
    status: int, detail: str, errors: list[dict[str, Any]] | None = None
) -> JSONResponse:
    """The JSON :class:`ErrorBody` answer with ``status``."""
    body = ErrorBody(detail=detail, errors=errors).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status)


def validation_summary(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The one-line ``detail`` of pydantic's ``errors`` and the cleaned-up list itself."""
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


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail, errors = validation_summary(list(exc.errors()))
    return error_response(422, detail, errors)


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = str(exc.detail)
    if detail == "There was an error parsing the body":  # e.g. JSON nested too deeply
        detail = "the body could not be parsed as JSON (malformed or nested too deeply)"
    response = error_response(exc.status_code, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_sentiment_error(request: Request, exc: SentimentError) -> JSONResponse:
    return error_response(422, str(exc))


async def _on_too_long(request: Request, exc: WindowCapExceeded) -> JSONResponse:
    return error_response(413, str(exc))


async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error; see the server log")


def add_exception_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON: validation, HTTP, usage and unhandled errors."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(SentimentError, _on_sentiment_error)
    app.add_exception_handler(WindowCapExceeded, _on_too_long)
    app.add_exception_handler(Exception, _on_crash)
