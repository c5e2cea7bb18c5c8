"""HTTP handlers: the only package that knows about Connexion.

Convention (one hop from the contract to the code): every operation in spec/openapi.yaml names its
module with `x-openapi-router-controller: handlers.<area>`, and its camelCase operationId is the
snake_case function in that module — `voidInvoice` is `handlers/invoices.py::void_invoice`.
Handlers only parse, call one service, and shape the response.
"""

from __future__ import annotations

import inflection
from collections.abc import Callable

from connexion.resolver import Resolution, Resolver


class AreaResolver(Resolver):
    """operationId → `handlers.<area>.<snake_case>`; `wrap_reads` (given by the HTTP face) wraps every GET handler."""

    def __init__(self, wrap_reads: Callable[[Callable], Callable] | None = None):
        super().__init__()
        self.wrap_reads = wrap_reads

    def resolve_function_from_operation_id(self, operation_id: str):
        module, _, name = operation_id.rpartition(".")
        return super().resolve_function_from_operation_id(f"{module}.{inflection.underscore(name)}")

    def resolve(self, operation) -> Resolution:
        resolution = super().resolve(operation)
        if self.wrap_reads is not None and operation.method.lower() == "get":
            return Resolution(self.wrap_reads(resolution.function), resolution.operation_id)
        return resolution
