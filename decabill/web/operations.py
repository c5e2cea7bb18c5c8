"""The AsyncApp's operations with their Connexion decorators built once.

Connexion 3's `AsyncOperation.fn` is a property: on every request it builds a new `StarletteDecorator`,
the parameter and response decorators, inspects the handler's signature (`inspect_function_arguments`)
and a new URI parser for the operation — all of which depend on the operation alone. Here they are built
at the operation's first request (the URI parser needs the operation Connexion's context middleware
sets) and kept; each request still gets its own `ConnexionRequest` (a `SharedRequest`, decabill/web/request.py:
the headers and query parameters the security and validation layers parsed), the handler's arguments made (by
`PreparedParameterDecorator`, decabill/web/parameters.py) and its answer turned into a response by the same
decorators.

Plugged in through the classes Connexion exposes (`AsyncApi.make_operation`, `AsyncASGIApp.api_cls`);
`AsyncApp.__init__` only creates the inner app, so `DecabillAsyncApp` creates ours instead
(tests/web/test_prepared_operations.py fails if that changes).
"""

from __future__ import annotations

import typing as t

from connexion.apps.abstract import AbstractApp
from connexion.apps.asynchronous import AsyncApi, AsyncApp, AsyncASGIApp, AsyncOperation
from connexion.context import operation as current_operation
from connexion.decorators import StarletteDecorator
from connexion.decorators.response import AsyncResponseDecorator
from connexion.operations import AbstractOperation
from starlette.types import Receive, Scope, Send

from decabill.web.parameters import PreparedParameterDecorator
from decabill.web.request import SharedRequest


FORM_MIMETYPES = ("multipart/form-data", "application/x-www-form-urlencoded")  # what Starlette parses as a form


class _Request(SharedRequest):
    async def files(self):
        # Connexion asks every request for its uploaded files, which parses its form; only a form body can
        # hold any (Starlette's own test), so any other request has none without the parse.
        if self._files is None and self.mimetype not in FORM_MIMETYPES:
            self._files = {}
        return await super().files()


class _ResponseDecorator(AsyncResponseDecorator):
    """Connexion's response decorator of one operation, whose media types are read once: Connexion infers the
    content type of every answer from the operation's `produces` (through its context proxy, a set made per
    answer). An answer without headers of an operation that produces one media type gets that type, as
    Connexion's inference gives it; anything else is inferred by Connexion."""

    _produces: list[str] | None = None

    def _infer_content_type(self, data: t.Any, headers: dict) -> str | None:  # type: ignore[override]
        produces = self._produces
        if produces is None:
            produces = self._produces = list(set(current_operation.produces))
        if not headers and len(produces) == 1:
            return produces[0]
        return AsyncResponseDecorator._infer_content_type(data, headers)


class _Decorator(StarletteDecorator):
    @property
    def _parameter_decorator_cls(self) -> type[PreparedParameterDecorator]:
        return PreparedParameterDecorator

    @property
    def _response_decorator_cls(self) -> type[AsyncResponseDecorator]:
        return _ResponseDecorator


class PreparedAsyncOperation(AsyncOperation):
    _prepared: tuple[t.Callable, t.Any] | None = None

    def _prepare(self) -> tuple[t.Callable, t.Any]:
        decorator = _Decorator(pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)
        # The same chain Connexion's decorator builds per request; its URI parser reads the operation
        # from Connexion's context, which is this operation's at any of its requests.
        self._prepared = (decorator.decorate(self._fn), decorator.uri_parser)
        return self._prepared

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        function, uri_parser = self._prepared or self._prepare()
        response = await function(_Request(scope, receive, uri_parser=uri_parser))
        return await response(scope, receive, send)


class PreparedAsyncApi(AsyncApi):
    def make_operation(self, operation: AbstractOperation) -> PreparedAsyncOperation:
        return PreparedAsyncOperation.from_operation(
            operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )


class PreparedAsyncASGIApp(AsyncASGIApp):
    api_cls = PreparedAsyncApi


class DecabillAsyncApp(AsyncApp):
    def __init__(self, import_name: str, **kwargs) -> None:
        self._middleware_app = PreparedAsyncASGIApp()
        AbstractApp.__init__(self, import_name, **kwargs)
