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


async def test_plain_parameter_values_are_accepted_without_running_the_schema_s_validator(make_api, monkeypatch):
    validated = []
    original = validation._parameter_validator

    def counting(schema):
        validated.append(schema)
        return original(schema)

    monkeypatch.setattr(validation, "_parameter_validator", counting)
    api = await make_api(fresh=True)
    params = {"limit": 5, "offset": 0, "serviceTypeId": str(uuid.uuid4())}
    assert (await api.get("/public/service-plan-offerings", params=params)).status_code == 200
    assert validated == []  # an integer in its bounds, a uuid: accepted by their schemas' plain tests
    assert_error(await api.get("/public/service-plan-offerings", params={"limit": 0}), 400)  # below the minimum
    assert len(validated) == 1  # the validator words the error
    assert validation._acceptance({"type": "integer", "exclusiveMinimum": True, "minimum": 1}) is None
    assert validation._acceptance({"type": "string", "format": "date"}) is None  # a format it does not check
    assert validation._acceptance({"type": "number"}) is None
    assert validation._acceptance({"type": ["string", "null"]}) is None


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


# --- one request view, prepared arguments (decabill/web/request.py, parameters.py, security.py) ----------------
# A small spec with parameters of every kind the contract could use, served twice: by our stack and by Connexion's
# own classes (its security operation, validation operation, operation and parameter decorator; the same
# validator classes, with Connexion's own parse of the request), both answering with what the handler was given.

ECHO_SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "echo", "version": "1"},
    "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearerAuth": []}],
    "paths": {
        "/things/{thingId}": {
            "get": {
                "operationId": "get_thing",
                "parameters": [
                    {"name": "thingId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                                                "default": 20}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                    {"name": "active", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "verbose", "in": "query", "schema": {"type": "boolean", "default": False}},
                    {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                    {"name": "ids", "in": "query", "explode": False,
                     "schema": {"type": "array", "items": {"type": "integer"}}},
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["open", "paid"],
                                                                 "default": "open"}},
                    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date"}},
                    {"name": "ratio", "in": "query", "schema": {"type": "number"}},
                    {"name": "pageSize", "in": "query", "schema": {"type": "integer"}},
                    {"name": "type", "in": "query", "schema": {"type": "string"}},
                    {"name": "note", "in": "query", "schema": {"type": "string", "nullable": True}},
                    {"name": "unused", "in": "query", "schema": {"type": "integer", "default": 3}},
                    {"name": "X-Trace", "in": "header", "schema": {"type": "string", "default": "none"}},
                    # plain schemas the validator's acceptance test knows (decabill/web/validation.py)
                    {"name": "code", "in": "query", "schema": {"type": "string", "minLength": 2, "maxLength": 8,
                                                               "pattern": "^[a-z]+$"}},
                    {"name": "ref", "in": "query", "schema": {"type": "string", "format": "uuid"}},
                    {"name": "score", "in": "query", "schema": {"type": "integer", "minimum": 0.5, "maximum": 9.5}},
                    {"name": "X-Short", "in": "header", "schema": {"type": "string", "maxLength": 3,
                                                                  "enum": ["a", "ab", "abcd"]}},
                ],
                "responses": {"200": {"description": "echo", "content": {"application/json": {"schema": {}}}}},
            }
        },
        "/bag": {
            "get": {
                "operationId": "get_bag",
                "security": [],
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 20}},
                    {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"type": "string"},
                                                               "default": ["a"]}},
                    {"name": "flag", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {"200": {"description": "echo", "content": {"application/json": {"schema": {}}}}},
            },
            "post": {
                "operationId": "post_bag",
                "parameters": [{"name": "dryRun", "in": "query", "schema": {"type": "boolean", "default": True}}],
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {"n": {"type": "integer"}}}}}},
                "responses": {"200": {"description": "echo", "content": {"application/json": {"schema": {}}}}},
            },
        },
    },
}


def _echo(**given) -> dict:
    return {name: [type(value).__name__, value if not isinstance(value, dict) or name != "token_info" else
                   sorted(value)] for name, value in sorted(given.items())}


async def _get_thing(thing_id, limit, offset, verbose, status, active=None, tags=None, ids=None, since=None,
                     ratio=None, page_size=None, type_=None, note=None, code=None, ref=None, score=None, user=None,
                     token_info=None):
    return _echo(thing_id=thing_id, limit=limit, offset=offset, verbose=verbose, status=status, active=active,
                 tags=tags, ids=ids, since=since, ratio=ratio, page_size=page_size, type_=type_, note=note, code=code,
                 ref=ref, score=score, user=user, token_info=token_info)


async def _get_bag(**kwargs):
    return _echo(**kwargs)


async def _post_bag(body, dry_run, token_info):
    return _echo(body=body, dry_run=dry_run, token_info=token_info)


ECHO_HANDLERS = {"get_thing": _get_thing, "get_bag": _get_bag, "post_bag": _post_bag}


def _echo_security():
    from connexion.exceptions import OAuthProblem
    from connexion.security import AbstractSecurityHandler

    class EchoBearer(AbstractSecurityHandler):
        def get_fn(self, security_scheme, required_scopes):
            async def verify(request):
                given = request.headers.get("authorization")
                if given != "Bearer ok":
                    raise OAuthProblem(detail="No valid token")
                return {"sub": "someone", "scope": "all"}

            return verify

    return {"bearer": EchoBearer}


def _echo_apps():
    """(ours, Connexion's own) serving ECHO_SPEC."""
    from connexion import AsyncApp
    from connexion.resolver import Resolver
    from connexion.validators import ParameterValidator

    from decabill.web.operations import DecabillAsyncApp
    from decabill.web.stack import middlewares

    class ConnexionsParse(ClearParameterValidator):
        validate = ParameterValidator.validate  # Connexion's own request object and parse of the query
        accepts_plain_values = False  # every value through the schema's validator

    options = dict(resolver=Resolver(function_resolver=ECHO_HANDLERS.__getitem__), pythonic_params=True,
                   strict_validation=True)
    ours = DecabillAsyncApp(__name__, security_map=_echo_security(), middlewares=middlewares())
    ours.add_api(ECHO_SPEC, validator_map=validation.VALIDATOR_MAP, uri_parser_class=validation.SpecURIParser,
                 **options)
    theirs = AsyncApp(__name__, security_map=_echo_security())
    theirs.add_api(ECHO_SPEC, validator_map={**validation.VALIDATOR_MAP, "parameter": ConnexionsParse}, **options)
    return ours, theirs


ECHO_QUERIES = [
    "", "limit=5", "limit=0", "limit=101", "limit=abc", "limit=5&limit=7", "offset=-1", "active=true",
    "active=FALSE", "active=yes", "verbose=true", "tags=a&tags=b", "tags=a,b", "tags=", "ids=1,2,3", "ids=1,x",
    "ids=1&ids=2", "status=paid", "status=nope", "since=2026-01-02", "since=2026-13-45", "ratio=1.5",
    "ratio=x", "pageSize=3", "pageSize=", "type=x", "note=null", "note=None", "note=text", "nope=1",
    "note=%00", "limit=3&offset=2&active=false&tags=x&status=paid&pageSize=9&type=t", "unused=4",
    "limit=5.0", "limit=%2B5", "limit=%205", "limit=05", "limit=-0", "limit=1e1", "limit=true", "status=PAID",
    "status=", "status=open&status=paid", "code=ab", "code=a", "code=abcdefgh", "code=abcdefghi", "code=aB",
    "code=%C3%A4b", "code=ab%0A", "code=", "ref=" + ID, "ref=" + ID.upper(), "ref=" + ID[:-1], "ref=x",
    "score=0", "score=1", "score=9", "score=10", "score=1.5", "offset=0&limit=100", "offset=0&limit=1",
]


async def test_our_request_path_gives_handlers_and_errors_what_connexion_s_own_gives(env):
    import httpx

    ours, theirs = _echo_apps()
    thing = f"/things/{ID}"
    requests = [("GET", f"{thing}?{query}", {"Authorization": "Bearer ok"}) for query in ECHO_QUERIES]
    requests += [("GET", f"/bag?{query}", {}) for query in ("", "limit=2", "tags=x&tags=y", "flag=true", "flag=1",
                                                             "tags=", "other=1")]
    requests += [
        ("GET", thing, {}), ("GET", thing, {"Authorization": "Bearer no"}), ("GET", "/things/not-a-uuid?limit=2",
                                                                             {"Authorization": "Bearer ok"}),
        ("GET", thing, {"Authorization": "Bearer ok", "X-Trace": "t"}),
        *[("GET", thing, {"Authorization": "Bearer ok", "X-Short": short}) for short in ("a", "ab", "abc", "abcd", "")],
        ("POST", "/bag", {"Authorization": "Bearer ok"}), ("POST", "/bag?dryRun=false", {"Authorization": "Bearer ok"}),
    ]
    bodies = [None, {"n": 2}, {"n": "x"}]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(ours), base_url="http://t") as ours_client, \
            httpx.AsyncClient(transport=httpx.ASGITransport(theirs), base_url="http://t") as their_client:
        compared = 0
        for method, url, headers in requests:
            for body in bodies if method == "POST" else [None]:
                kwargs = {"headers": headers} | ({"json": body} if body is not None else {})
                mine, own = await ours_client.request(method, url, **kwargs), await their_client.request(
                    method, url, **kwargs)
                assert (mine.status_code, mine.json()) == (own.status_code, own.json()), (method, url, body)
                compared += 1
    assert compared == len(requests) + 2 * len(bodies) - 2


async def test_a_request_s_headers_and_query_are_parsed_once_and_its_arguments_planned_once(env, monkeypatch):
    import httpx

    from decabill.web import parameters, request as request_view

    parsed = {"headers": 0, "query": 0, "plans": 0}

    class CountedHeaders(request_view.Headers):
        def __init__(self, *args, **kwargs):
            parsed["headers"] += 1
            super().__init__(*args, **kwargs)

    class CountedQuery(request_view.QueryParams):
        def __init__(self, *args, **kwargs):
            parsed["query"] += 1
            super().__init__(*args, **kwargs)

    plan_init = parameters.ArgumentPlan.__init__

    def counted_plan(self, *args, **kwargs):
        parsed["plans"] += 1
        plan_init(self, *args, **kwargs)

    monkeypatch.setattr(request_view, "Headers", CountedHeaders)
    monkeypatch.setattr(request_view, "QueryParams", CountedQuery)
    monkeypatch.setattr(parameters.ArgumentPlan, "__init__", counted_plan)
    ours, _ = _echo_apps()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(ours), base_url="http://t") as client:
        for limit in (1, 2, 3):
            answer = await client.get(f"/things/{ID}?limit={limit}&tags=a,b", headers={"Authorization": "Bearer ok"})
            assert answer.status_code == 200 and answer.json()["limit"] == ["int", limit]
            assert answer.json()["tags"] == ["list", ["a", "b"]] and answer.json()["user"] == ["str", "someone"]
    # security, validation and the operation read one parse per request; one plan for the operation
    assert parsed == {"headers": 3, "query": 3, "plans": 1}
