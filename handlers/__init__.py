"""HTTP handlers: the only package that knows about Connexion.

Convention (one hop from the contract to the code): every operation in spec/openapi.yaml names its
module with `x-openapi-router-controller: handlers.<area>`, and its camelCase operationId is the
snake_case function in that module — `voidInvoice` is `handlers/invoices.py::void_invoice`.
Handlers only parse, call one service, and shape the response.
"""

from __future__ import annotations

import inflection
from connexion.resolver import Resolver


class AreaResolver(Resolver):
    def resolve_function_from_operation_id(self, operation_id: str):
        module, _, name = operation_id.rpartition(".")
        return super().resolve_function_from_operation_id(f"{module}.{inflection.underscore(name)}")
