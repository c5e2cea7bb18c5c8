"""Plumbing the HTTP fakes share: the state's lock, request log and injected-error queue, the request guard
(JSON body, log, token check, injected errors) and paging arithmetic.

Only the mechanism lives here. What goes on the wire (error bodies, status codes, pagination envelopes,
which fields an injected error carries) stays in each fake, passed in as callables or built from the
values these helpers return.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Refusal = Callable[[Request], Response | None]


class FakeState:
    """Mutable state of a fake; safe to poke from the test thread (all access under ``lock``).

    Subclasses extend :meth:`reset` (calling ``super().reset()`` inside ``with self.lock``) and offer a
    ``fail_next(...)`` with their API's error fields, built on :meth:`_inject`. ``token`` is the bearer token
    the fake accepts (the class's ``TOKEN`` unless given); a fake with its own key rules (Stripe) ignores it.
    """

    TOKEN: ClassVar[str] = ""

    def __init__(self, token: str | None = None):
        self.token = self.TOKEN if token is None else token
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict[str, Any]] = []
            self._errors: list[dict[str, Any]] = []

    def _inject(self, *, times: int = 1, method: str | None = None, path: str | None = None, **fields: Any) -> None:
        """Queue an error for the next ``times`` requests (only those with ``method`` / containing ``path``
        when given); ``fields`` are whatever the fake needs to render it."""
        with self.lock:
            self._errors.append({**fields, "times": times, "method": method, "path": path})

    def _take_error(self, method: str, path: str) -> dict[str, Any] | None:
        for err in self._errors:
            if err["method"] in (None, method) and (err["path"] is None or err["path"] in path):
                err["times"] -= 1
                if err["times"] <= 0:
                    self._errors.remove(err)
                return err
        return None

    def _log(self, request: Request, path: str, **fields: Any) -> None:
        """Append ``{method, path, **fields, headers}`` to ``requests`` (call under ``lock``)."""
        self.requests.append({"method": request.method, "path": path, **fields, "headers": dict(request.headers)})


def route_path(request: Request) -> str:
    """The request path inside the fake's mount (``/v1/servers``, not ``/hetzner/v1/servers``)."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def has_bearer(request: Request, token: str) -> bool:
    return request.headers.get("authorization") == f"Bearer {token}"


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API shows it: without the fake's private ``_keys``."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def by_int_id(collection: Mapping[int, Any], raw_id: str) -> Any:
    """``collection[int(raw_id)]``, or None for an unknown or non-numeric id."""
    try:
        return collection.get(int(raw_id))
    except ValueError:
        return None


def json_response(body: Any, status: int, rate_limit_headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON answer; a 429 also carries the API's rate-limit headers."""
    return JSONResponse(body, status, headers=rate_limit_headers if status == 429 else None)


def page_slice(request: Request, items: list[Any], *, default: int, smallest: int, largest: int
               ) -> tuple[int, int, list[Any]]:
    """(page, per_page, the items of that page) from ``?page=&per_page=``, per_page clamped to the API's bounds."""
    page = max(int(request.query_params.get("page", 1)), 1)
    per_page = min(max(int(request.query_params.get("per_page", default)), smallest), largest)
    return page, per_page, items[(page - 1) * per_page: page * per_page]


class JsonGuard:
    """What every request of a JSON fake goes through, in this order: parse the body (``invalid_json()``
    when it is not JSON), log ``{method, path, query, json, headers}``, ``refuse(request)`` (the token
    check), an injected error (rendered by ``injected(err)``) and ``then(request)`` (further checks).

    Decorate a handler ``async (request, body) -> Response`` with the guard to run it behind these checks.
    """

    def __init__(self, state: FakeState, *, invalid_json: Callable[[], Response], refuse: Refusal,
                 injected: Callable[[dict[str, Any]], Response], then: Refusal | None = None):
        self.state, self.invalid_json, self.refuse = state, invalid_json, refuse
        self.injected, self.then = injected, then

    async def check(self, request: Request) -> tuple[Any, Response | None]:
        """(the JSON body, None) or (body, the error answer)."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return None, self.invalid_json()
        path = route_path(request)
        state = self.state
        with state.lock:
            state._log(request, path, query=dict(request.query_params), json=body)
            refused = self.refuse(request)
            if refused is not None:
                return body, refused
            err = state._take_error(request.method, path)
            if err:
                return body, self.injected(err)
            return body, self.then(request) if self.then else None

    def __call__(self, handler: Callable[[Request, Any], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def view(request: Request) -> Response:
            body, refused = await self.check(request)
            if refused is not None:
                return refused
            return await handler(request, body)

        return view
