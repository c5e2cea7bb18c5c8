"""The request path around the handlers (decabill/web/routing.py, validation.py, middleware.py, stack.py): what
is plugged into Connexion is really on the path (these fail if Connexion changes under it), and the answers are
the ones Connexion's own classes give — the same route for every path and method of the spec, the validators of
an operation made once, the request context's fields and ids."""

from __future__ import annotations

import os
import re
import uuid

import structlog
from starlette.routing import Match, Mount
from structlog.testing import capture_logs

from decabill.web import middleware as request_context
from decabill.web import validation
from decabill.web.routing import IndexedRouter, IndexedRoutingMiddleware
from decabill.web.validation import ClearParameterValidator, PreparedRequestValidationMiddleware
from tests.helpers import assert_error

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ID = "6f1c2a64-2b0e-4c47-9d57-3c1a4f0b6a10"


def _stack(app) -> list:
    middleware = app.middleware
    if middleware.middleware_stack is None:
        middleware.app, middleware.middleware_stack = middleware._build_middleware_stack()  # noqa: SLF001
    return list(middleware.middleware_stack)


def _api_router(app) -> IndexedRouter:
    [routing] = [m for m in _stack(app) if isinstance(m, IndexedRoutingMiddleware)]
    [mount] = [r for r in routing.router.routes if isinstance(r, Mount) and r.path == "/api"]
    assert isinstance(mount.app, IndexedRouter)
    return mount.app


def _starlette_choice(routes, scope):
    """Starlette's `Router.app` loop over every route: the first full match, else the first partial one."""
    partial = None
    for route in routes:
        match, child_scope = route.matches(scope)
        if match is Match.FULL:
            return route, child_scope
        if match is Match.PARTIAL and partial is None:
            partial = route, child_scope
    return partial


async def test_every_path_and_method_of_the_spec_is_routed_as_starlette_s_own_loop_routes_it(env):
    from decabill.web.app import create_app

    router = _api_router(create_app())
    paths = {re.sub(r"\{[^}/]+\}", ID, route.path) for route in router.routes}
    paths |= {
        "/invoices/summary",
        "/service-types/providers",
        "/no-such-thing",
        "/invoices/",
        "/",
        "",
        f"/admin/invoices/{ID}/nope",
        "/public/service-plan-offerings",
    }
    checked = 0
    for path in sorted(paths):
        for method in METHODS:
            scope = {"type": "http", "method": method, "path": "/api" + path, "root_path": "/api", "path_params": {}}
            assert router.match(scope) == _starlette_choice(router.routes, scope), (method, path)
            checked += 1
    assert checked > 400  # every route of the spec, each with every method


async def test_requests_are_routed_by_the_indexed_router_and_answered_as_before(make_api, monkeypatch):
    chosen = []
    original = IndexedRouter.match

    def spying(self, scope):
        found = original(self, scope)
        chosen.append(found[0].path if found else None)
        return found

    monkeypatch.setattr(IndexedRouter, "match", spying)
    api = await make_api(fresh=True)
    assert (await api.get("/public/service-plan-offerings")).status_code == 200
    assert_error(await api.post("/public/service-plan-offerings"), 405)  # a concrete path: refused before routing
    assert_error(await api.get("/no-such-thing"), 404)
    assert_error(await api.get("/invoices/not-a-uuid"), 401)  # routed to GET /invoices/{…}, which needs a token
    # no route for the 404: Starlette's own loop and default answered it
    assert chosen[:2] == ["/public/service-plan-offerings", None] and len(chosen) == 3
    assert re.fullmatch(r"/invoices/\{\w+\}", chosen[2])


async def test_the_stack_holds_our_connexion_replacements_in_connexion_s_order(env):
    from connexion.middleware.main import ConnexionMiddleware

    from decabill.web.app import create_app
    from decabill.web.stack import REPLACED, middlewares

    assert set(REPLACED) <= set(ConnexionMiddleware.default_middlewares)  # Connexion still has what we replace
    ours = middlewares()
    assert [type(m) if not isinstance(m, type) else m for m in ours] == [
        REPLACED.get(m, m) for m in ConnexionMiddleware.default_middlewares
    ]
    stack = _stack(create_app())
    assert any(isinstance(m, PreparedRequestValidationMiddleware) for m in stack)
    names = [type(m).__name__ for m in stack]
    # ours around Connexion's error mapper, in the documented order; the request context holds the body limit
    assert (
        names.index("RequestMetricsMiddleware")
        < names.index("CORSMiddleware")
        < names.index("RequestContextMiddleware")
        < names.index("ExceptionMiddleware")
    )
    assert "BodyLimitMiddleware" not in names


async def test_an_operation_s_parameter_validator_is_made_once_and_still_validates_each_request(make_api, monkeypatch):
    made = []
    original = ClearParameterValidator.__init__

    def counting(self, *args, **kwargs):
        made.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ClearParameterValidator, "__init__", counting)
    api = await make_api(fresh=True)
    for params in ({"limit": 1}, {"limit": 2, "offset": 1}, {}):
        assert (await api.get("/public/service-plan-offerings", params=params)).status_code == 200
    assert_error(await api.get("/public/service-plan-offerings", params={"limit": 0}), 400)
    assert_error(await api.get("/public/service-plan-offerings", params={"nope": 1}), 400)  # strict validation
    assert len(made) == 1  # Connexion's own validation operation makes one per request: five


async def test_bodies_are_still_validated_and_media_types_checked(api):
    assert_error(await api.post("/auth/login", json={"email": "x@example.com"}), 400)
    wrong_type = await api.post("/auth/login", content=b"email=x", headers={"Content-Type": "text/plain"})
    assert_error(wrong_type, 415)
    assert_error(await api.post("/auth/login", content=b"{", headers={"Content-Type": "application/json"}), 400)


async def test_generated_correlation_ids_are_distinct_version_4_uuids(api):
    ids = [(await api.get("/health")).headers["x-correlation-id"] for _ in range(5)]
    ids += [request_context.new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_process_generates_other_correlation_ids_than_its_parent():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out without any cleanup of the parent's state
        os.write(write, request_context.new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    parent = request_context.new_request_id()
    assert uuid.UUID(child).version == 4
    assert child[:24] != parent[:24]  # another random prefix, not the parent's counter continued


async def test_the_request_log_line_has_its_fields_and_the_response_its_headers(api):
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        response = await api.get("/health", headers={"X-Correlation-Id": "c-log-1"})
    assert response.headers["x-correlation-id"] == "c-log-1"
    [line] = [entry for entry in logs if entry.get("event") == "request" and entry.get("request_id") == "c-log-1"]
    assert line["method"] == "GET" and line["path"] == "/api/health" and line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["client"]
    # the context is cleared after the request: nothing of it leaks into the next log line
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_a_response_s_own_correlation_id_is_replaced_and_a_429_keeps_its_retry_after(make_api, env):
    env.update(RATE_LIMIT_ENABLED="true", RATE_LIMIT_LIMIT="1", RATE_LIMIT_TTL="60")
    api = await make_api(fresh=True)
    first = await api.get("/health", headers={"X-Request-Id": "r-1"})
    assert first.headers.get_list("x-correlation-id") == ["r-1"]
    refused = await api.get("/health", headers={"X-Correlation-Id": "r-2"})
    assert_error(refused, 429)
    assert refused.headers.get_list("x-correlation-id") == ["r-2"]
    assert len(refused.headers.get_list("retry-after")) == 1 and 1 <= int(refused.headers["retry-after"]) <= 60


def test_the_validation_module_keeps_connexion_s_body_step():
    # PreparedRequestValidationOperation._validate_body repeats Connexion's steps after the parameters; it
    # relies on these methods of Connexion's operation.
    for name in ("extract_content_type", "validate_mime_type", "security_query_params"):
        assert hasattr(validation.RequestValidationOperation, name)
