"""Every error leaves the API as the contract's `ErrorResponse` with content type application/json:
our domain errors, Connexion's problems (validation 400, security 401/403), Starlette's routing errors
(404/405) and anything unexpected (500, traceback logged, no details leaked)."""

from __future__ import annotations

import functools
import json
import re

import yaml

import structlog
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from decabill.errors import DecabillError, error_body
from spec import OPENAPI_PATH

log = structlog.get_logger("decabill.errors")


def _response(status: int, message: str, headers: dict | None = None) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        mimetype="application/json",
        content_type="application/json",
        body=json.dumps(error_body(status, message)).encode(),
        headers=headers or {},
    )


def domain_error(_request: ConnexionRequest, exc: DecabillError) -> ConnexionResponse:
    return _response(exc.status_code, exc.message)


def problem(_request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    message = exc.detail or exc.title or "Error"
    if exc.status >= 500:
        log.error("problem", status=exc.status, detail=message)
    return _response(exc.status, str(message), dict(exc.headers or {}))


@functools.cache
def _path_methods() -> list[tuple[re.Pattern[str], str]]:
    """Each spec path as a regex, with the methods the contract documents for it."""
    with open(OPENAPI_PATH) as fh:
        paths = yaml.safe_load(fh)["paths"]
    table = []
    for template, item in paths.items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape("/api" + template))
        methods = sorted(m.upper() for m in item if m in ("get", "post", "put", "patch", "delete"))
        table.append((re.compile(f"^{pattern}$"), ", ".join(methods)))
    return table


def http_error(request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"Cannot {request.method} {request.url.path}"
    else:
        message = str(exc.detail)
    if exc.status_code == 405:
        # Starlette's Allow header names only the first matching route; the contract lists all methods.
        for pattern, methods in _path_methods():
            if pattern.match(request.url.path):
                headers["Allow"] = methods
                break
    return _response(exc.status_code, message, headers)


def unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.error("unhandled_exception", exc_info=exc)
    return _response(500, "Internal server error")


def register(app) -> None:
    app.add_error_handler(DecabillError, domain_error)
    app.add_error_handler(ProblemException, problem)
    app.add_error_handler(HTTPException, http_error)
    app.add_error_handler(Exception, unexpected)
