"""Every error leaves as application/problem+json (RFC 9457); never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.problems import InvalidParam, Problem
from services.errors import DomainError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem_response(
    status: int,
    detail: str,
    request: Request,
    invalid: list[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        invalid_params=invalid,
    )
    return JSONResponse(
        problem.to_body(), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    invalid = [
        InvalidParam(name=_location(tuple(err.get("loc", ()))), reason=str(err.get("msg", "")))
        for err in exc.errors()
    ]
    detail = "; ".join(f"{p.name}: {p.reason}" for p in invalid) or "invalid request"
    return problem_response(422, detail, request, invalid)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    invalid = [InvalidParam(name=exc.field, reason=exc.detail)] if exc.field else None
    return problem_response(exc.status_hint, exc.detail, request, invalid)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(
        exc.status_code,
        str(exc.detail),
        request,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", extra={"path": request.url.path, "error": type(exc).__name__})
    return problem_response(500, "an internal error occurred; it has been logged", request)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
