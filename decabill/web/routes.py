"""The contract's paths and their methods, for the answers routing alone gets wrong.

OpenAPI matches a concrete path before a templated one; Starlette matches in registration order, so
`POST /api/service-types/providers` would reach `POST /api/service-types/{id}` and fail as a malformed
id. `allowed_methods()` tells the middleware (405 early) and the error mapper (the Allow header).
"""

from __future__ import annotations

import functools
import re

from spec import openapi_document

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@functools.cache
def _table() -> tuple[dict[str, frozenset[str]], list[tuple[re.Pattern[str], frozenset[str]]]]:
    paths = openapi_document()["paths"]
    concrete: dict[str, frozenset[str]] = {}
    templated: list[tuple[re.Pattern[str], frozenset[str]]] = []
    for template, item in paths.items():
        methods = frozenset(m.upper() for m in item if m in HTTP_METHODS)
        if "{" in template:
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape("/api" + template))
            templated.append((re.compile(f"^{pattern}$"), methods))
        else:
            concrete["/api" + template] = methods
    return concrete, templated


def allowed_methods(path: str) -> frozenset[str] | None:
    concrete, templated = _table()
    if path in concrete:
        return concrete[path]
    for pattern, methods in templated:
        if pattern.match(path):
            return methods
    return None


def is_concrete(path: str) -> bool:
    return path in _table()[0]


def allow_header(methods: frozenset[str]) -> str:
    return ", ".join(sorted(methods))
