"""Connexion's parameter decorator with what depends on the operation alone worked out once.

For every request Connexion's `AsyncParameterDecorator` (`prep_kwargs` → `get_arguments`) lists the operation's
path and query parameters from its spec, collects the query defaults and deep-copies them, converts every
parameter name to its Python name, logs two debug lines per query parameter, reads the body name and the body
schema of the request's content type, and looks the handler's arguments up in a list (~5–7 % of an authenticated
read, py-spy). `ArgumentPlan` holds per operation which path and query parameters exist, their definitions,
Python names and whether the handler takes them, and the query defaults; a request only converts what it has,
with Connexion's own conversion (`_get_val_from_param`, `deep_merge`, `_get_body_argument`,
`_get_file_arguments`) in Connexion's order, so the handler gets the same keyword arguments.

The plan is made at the operation's first request: it reads the operation from Connexion's context, as
Connexion's functions do at every request. `tests/web/test_request_path.py` compares its arguments with
Connexion's `prep_kwargs` for parameters of every kind.
"""

from __future__ import annotations

import asyncio
import functools
import typing as t
from copy import deepcopy

from connexion.context import context as current_context
from connexion.context import operation as current_operation
from connexion.decorators import parameter as connexion_parameters
from connexion.decorators.parameter import (
    CONTEXT_NAME,
    AsyncParameterDecorator,
    _get_body_argument,
    _get_file_arguments,
    _get_query_defaults,
    _get_val_from_param,
    unwrap_decorators,
)
from connexion.http_facts import FORM_CONTENT_TYPES
from connexion.lifecycle import ConnexionRequest
from connexion.operations import AbstractOperation, Swagger2Operation
from connexion.utils import deep_merge

from decabill.web.request import DEFAULT_CONTENT_TYPE

_MUTABLE = (dict, list, set)


class ArgumentPlan:
    """Which of an operation's parameters a handler takes, under which names, and their query defaults."""

    def __init__(self, operation: AbstractOperation, arguments: list[str], has_kwargs: bool,
                 sanitize: t.Callable[[str], str]) -> None:
        self.operation = operation
        self.arguments = frozenset(arguments)
        self.has_kwargs = has_kwargs
        self.sanitize = sanitize
        # (Python name, definition) of each path parameter, by its spec name
        self.path = {p["name"]: (sanitize(p["name"]), p) for p in operation.parameters if p["in"] == "path"}
        query = {p["name"]: p for p in operation.parameters if p["in"] == "query"}
        # (Python name, definition, whether the handler takes it) of each query parameter, by its spec name
        self.query = {name: (sanitize(name), p, has_kwargs or sanitize(name) in self.arguments)
                      for name, p in query.items()}
        self.defaults = _get_query_defaults(query)
        self.copied_defaults = any(isinstance(v, _MUTABLE) for v in self.defaults.values())
        self.trace = operation.method.upper() == "TRACE"
        self.request_body = operation.is_request_body_defined
        # the body name of a request without a Content-Type header (every GET), Connexion's `_maybe_get_body`
        self.default_body_name = sanitize(operation.body_name(DEFAULT_CONTENT_TYPE))
        self.swagger2 = isinstance(operation, Swagger2Operation)
        # Connexion sanitises the names a second time (`prep_kwargs`); with a name already sanitised that is the
        # identity for the names of the spec, remembered here, and computed for any other
        self.resanitized = {name: sanitize(name) for name, _, _ in self.query.values()}
        self.resanitized.update({name: sanitize(name) for name, _ in self.path.values()})
        self.context_keys = None if has_kwargs else self.arguments
        self.wants_context = CONTEXT_NAME in self.arguments

    def wants_body(self, request: ConnexionRequest) -> bool:
        """Connexion's `_maybe_get_body` test: whether the handler is given the request's body."""
        content_type = request.content_type
        body_name = (self.default_body_name if content_type == DEFAULT_CONTENT_TYPE
                     else self.sanitize(self.operation.body_name(content_type)))
        return (body_name in self.arguments or self.has_kwargs) or (
            self.swagger2 and request.mimetype in FORM_CONTENT_TYPES)

    def kwargs(self, request: ConnexionRequest, body: t.Any, files: dict) -> dict:
        """Connexion's `prep_kwargs`: the path, query, body and file arguments, then the context's."""
        arguments = {}
        for name, value in request.path_params.items():
            known = self.path.get(name)
            if known is None:  # assume the path parameter mechanism is used for injection
                arguments[self.sanitize(name)] = value
            else:
                arguments[known[0]] = _get_val_from_param(value, known[1])
        self._add_query(arguments, request.query_params)
        if not self.trace:
            if self.request_body:
                arguments.update(_get_body_argument(
                    body, operation=self.operation, arguments=list(self.arguments), has_kwargs=self.has_kwargs,
                    sanitize=self.sanitize, content_type=request.mimetype))
            if files:
                body_schema = self.operation.body_schema(request.mimetype)
                arguments.update(_get_file_arguments(files, self.arguments, body_schema, self.has_kwargs))
            elif self.request_body:
                self.operation.body_schema(request.mimetype)  # as Connexion: its warning on several media types

        resanitized = self.resanitized
        kwargs = {}
        for key, value in arguments.items():
            name = resanitized.get(key)
            kwargs[self.sanitize(key) if name is None else name] = value
        context = current_context
        for key, value in context.items():
            if self.context_keys is None or key in self.context_keys:
                kwargs[key] = value
        if self.wants_context:
            kwargs[CONTEXT_NAME] = context
        return kwargs

    def _add_query(self, arguments: dict, query_params: dict) -> None:
        """Connexion's `_get_query_arguments`: the defaults, the request's values merged over them."""
        if self.copied_defaults:
            merged = deepcopy(self.defaults)
        else:
            merged = dict(self.defaults)
        if query_params:
            deep_merge(merged, query_params)
        for key, value in merged.items():
            known = self.query.get(key)
            if known is None:
                name = self.sanitize(key)
                if self.has_kwargs or name in self.arguments:
                    connexion_parameters.logger.error(
                        "Function argument '%s' (non-sanitized: %s) not defined in specification", name, key)
            elif known[2]:
                arguments[known[0]] = _get_val_from_param(value, known[1])


class PreparedParameterDecorator(AsyncParameterDecorator):
    def __call__(self, function: t.Callable) -> t.Callable:
        # through Connexion's module, as its own decorator calls it
        arguments, has_kwargs = connexion_parameters.inspect_function_arguments(unwrap_decorators(function))
        plan: ArgumentPlan | None = None

        @functools.wraps(function)
        async def wrapper(request: ConnexionRequest) -> t.Any:
            nonlocal plan
            if plan is None:
                plan = ArgumentPlan(current_operation._get_current_object(), arguments, has_kwargs,  # noqa: SLF001
                                    self.sanitize_fn)
            body = request.get_body() if plan.wants_body(request) else None
            while asyncio.iscoroutine(body):
                body = await body
            return await function(**plan.kwargs(request, body, await request.files()))

        return wrapper
