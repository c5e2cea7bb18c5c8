"""One view of a request's headers and query string for every Connexion layer it passes through.

Connexion's security operation, its parameter validator and the operation's parameter decorator each build their
own `ConnexionRequest` around the same ASGI scope, and each parses again what it reads: the headers into a
Starlette `Headers` (the `Authorization` header, the header parameters, the content type) and the query string
into `QueryParams`, then through the operation's URI parser (splitting arrays, coercing types). `SharedRequest`
is Connexion's `ConnexionRequest` whose headers and parsed query parameters come from a `RequestView` kept in the
scope's `extensions`, which Connexion shares between its layers (Connexion's routing hands the same scope on
to the operation): parsed at the first layer that reads them, reused by the others.

A view is only reused while it describes the scope: the same raw header list (a layer that changes the headers
hands on a new list, as Starlette's `MutableHeaders` or our body limit do) and the same query string. Parsed
query parameters are kept per URI parser class: every layer's parser of a request is made from the parameters
of the one operation the request is routed to, so the same class gives the same result.
"""

from __future__ import annotations

import typing as t

from connexion.lifecycle import ConnexionRequest
from starlette.datastructures import Headers, QueryParams
from starlette.requests import cookie_parser
from starlette.types import Receive, Scope

VIEW = "decabill.request_view"  # the key in scope["extensions"]
DEFAULT_CONTENT_TYPE = "application/octet-stream"  # Connexion's content type of a request without one


class RequestView:
    """The parsed headers and query parameters of one request, made as the first layer asks for them."""

    __slots__ = ("_raw_headers", "_headers", "_query_string", "_query", "_resolved_by", "_resolved")

    def __init__(self) -> None:
        self._raw_headers: list | None = None
        self._headers: Headers | None = None
        self._query_string: bytes | None = None
        self._query: dict[str, list[str]] = {}
        self._resolved_by: type | None = None
        self._resolved: dict[str, t.Any] = {}

    def headers(self, scope: Scope) -> Headers:
        raw = scope["headers"]
        if self._headers is None or raw is not self._raw_headers:
            self._raw_headers, self._headers = raw, Headers(raw=raw)
        return self._headers

    def query_lists(self, scope: Scope) -> dict[str, list[str]]:
        """Every query key with its values in order, as Connexion hands them to its URI parser."""
        query_string = scope["query_string"]
        if query_string != self._query_string:
            params = QueryParams(query_string)
            self._query = {key: params.getlist(key) for key in params}
            self._query_string, self._resolved_by = query_string, None
        return self._query

    def query_params(self, scope: Scope, uri_parser) -> dict[str, t.Any]:
        """The query parameters as the URI parser resolves them (Connexion's `ConnexionRequest.query_params`)."""
        if not scope["query_string"]:  # nothing to parse: what Connexion's parse of no query gives
            return {}
        query = self.query_lists(scope)
        if self._resolved_by is not type(uri_parser):
            self._resolved = uri_parser.resolve_query(dict(query))
            self._resolved_by = type(uri_parser)
        return self._resolved


def view_of(scope: Scope) -> RequestView:
    extensions = scope.get("extensions")
    if extensions is None:
        extensions = scope["extensions"] = {}
    view = extensions.get(VIEW)
    if view is None:
        view = extensions[VIEW] = RequestView()
    return view


class SharedRequest(ConnexionRequest):
    """Connexion's request with its headers and query parameters read through the scope's `RequestView`.

    Everything else (path parameters, the body, the form, the context) is Connexion's, per layer as before."""

    def __init__(self, scope: Scope, receive: Receive | None = None, *, uri_parser=None) -> None:
        if receive is None:
            super().__init__(scope, uri_parser=uri_parser)
        else:
            super().__init__(scope, receive, uri_parser=uri_parser)
        self._scope = scope
        self._view = view_of(scope)

    @property
    def headers(self) -> Headers:
        return self._view.headers(self._scope)

    @property
    def content_type(self) -> str:
        return self._view.headers(self._scope).get("content-type", DEFAULT_CONTENT_TYPE)

    @property
    def query_params(self) -> dict[str, t.Any]:
        if self._query_params is None:
            if self.uri_parser is None:  # Connexion's request without a parser cannot resolve them either
                return super().query_params
            self._query_params = self._view.query_params(self._scope, self.uri_parser)
        return self._query_params


class ParameterView:
    """What Connexion's parameter validator reads of a request (`ConnexionRequest`'s query, path parameters,
    headers and cookies), read through the scope's `RequestView`, without making a request object: the
    query parsed here once for the operation's handler too (decabill/web/validation.py)."""

    __slots__ = ("scope", "uri_parser", "_view", "_path_params")

    def __init__(self, scope: Scope, uri_parser) -> None:
        self.scope, self.uri_parser, self._view = scope, uri_parser, view_of(scope)
        self._path_params: dict | None = None

    @property
    def query_params(self) -> dict[str, t.Any]:
        return self._view.query_params(self.scope, self.uri_parser)

    @property
    def path_params(self) -> dict[str, t.Any]:
        if self._path_params is None:
            self._path_params = self.uri_parser.resolve_path(self.scope.get("path_params", {}))
        return self._path_params

    @property
    def headers(self):
        return self._view.headers(self.scope)

    @property
    def cookies(self) -> dict[str, str]:
        return cookie_parser(self.headers.get("cookie", ""))
