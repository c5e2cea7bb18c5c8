"""Every error leaves the API as the contract's `ErrorResponse` with content type application/json:
our domain errors, Connexion's problems (validation 400, security 401/403), Starlette's routing errors
(404/405), no database connection free within DB_POOL_TIMEOUT (503 with Retry-After) and anything unexpected
(500, traceback logged, no details leaked)."""

from __future__ import annotations

import json


import structlog
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from decabill import db
from decabill.errors import DecabillError, error_body
from decabill.web.routes import allow_header, allowed_methods

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
    return _response(exc.status_code, exc.message, exc.headers)


def problem(_request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    message = exc.detail or exc.title or "Error"
    if exc.status >= 500:
        log.error("problem", status=exc.status, detail=message)
    return _response(exc.status, str(message), dict(exc.headers or {}))


def http_error(request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"Cannot {request.method} {request.url.path}"
    else:
        message = str(exc.detail)
    if exc.status_code == 405 and (methods := allowed_methods(request.url.path)):
        # Starlette's Allow header names only the first matching route; the contract lists all methods.
        headers["Allow"] = allow_header(methods)
    return _response(exc.status_code, message, headers)


def database_busy(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Every pooled connection stayed busy for DB_POOL_TIMEOUT (`db.PoolTimeout`): an overload, not a fault."""
    log.warning("db.pool_timeout", method=request.method, path=request.url.path)
    return _response(503, "The server is busy; try again shortly", {"Retry-After": "1"})


def unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.error("unhandled_exception", exc_info=exc)
    return _response(500, "Internal server error")


def register(app) -> None:
    app.add_error_handler(DecabillError, domain_error)
    app.add_error_handler(ProblemException, problem)
    app.add_error_handler(HTTPException, http_error)
    app.add_error_handler(db.PoolTimeout, database_busy)
    app.add_error_handler(Exception, unexpected)
