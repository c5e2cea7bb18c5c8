"""Shared handler helpers: the caller's principal, role checks, spec-driven response shaping, and PDF
downloads (`pdf_attachment`).

`dump(obj, "UserResponse")` reads the response schema of that name from spec/openapi.yaml and copies
each declared property from the object (camelCase property → snake_case attribute), so the spec is the
single description of every response shape — there is no second, hand-kept DTO per field.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

import inflection
import yaml
from connexion import request
from connexion.lifecycle import ConnexionResponse

from decabill.idempotency import service as idempotency

from decabill.identity.principal import Principal, require_admin
from spec import OPENAPI_PATH

if TYPE_CHECKING:
    from decabill.invoicing.service import Pdf


@functools.cache
def _schemas() -> dict[str, dict]:
    with open(OPENAPI_PATH) as fh:
        return yaml.safe_load(fh)["components"]["schemas"]


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = _schemas()[schema["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in schema:  # `A + {extra properties}` (e.g. AdminInvoiceListItem): one merged object schema
        merged: dict = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = _resolve(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        merged["nullable"] = schema.get("nullable", False)
        return merged
    return schema


def principal(token_info: dict) -> Principal:
    return token_info["principal"]


def admin_only(handler: Callable) -> Callable:
    """Admin role required (403 `Forbidden resource` otherwise); the API key counts as admin."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_admin(principal(kwargs["token_info"]))
        return await handler(*args, **kwargs)

    return wrapper


def idempotent(operation_id: str) -> Callable[[Callable], Callable]:
    """Honour `Idempotency-Key` on this handler (operations marked `x-idempotent: true`); without the header
    the handler simply runs."""

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = request.headers.get(idempotency.HEADER)
            if key is None or "token_info" not in kwargs:
                return await handler(*args, **kwargs)
            arguments = {name: value for name, value in kwargs.items() if name != "token_info"}

            async def work() -> idempotency.Response:
                answer = await handler(*args, **kwargs)
                return answer if isinstance(answer, tuple) else (answer, 200)

            return await idempotency.run_once(principal(kwargs["token_info"]), key, operation_id,
                                              idempotency.request_hash(operation_id, arguments), work)

        return wrapper

    return decorate


def _lookup(obj: Any, name: str) -> tuple[bool, Any]:
    if isinstance(obj, dict):
        for key in (name, inflection.underscore(name)):
            if key in obj:
                return True, obj[key]
        return False, None
    attr = inflection.underscore(name)
    if hasattr(obj, attr):
        return True, getattr(obj, attr)
    if hasattr(obj, name):
        return True, getattr(obj, name)
    return False, None


def _convert(value: Any, schema: dict) -> Any:
    schema = _resolve(schema)
    if value is None:
        return None
    kind = schema.get("type")
    if kind == "object" and "properties" in schema and not isinstance(value, (str, int, float)):
        return shape(value, schema)
    if kind == "array":
        return [_convert(item, schema.get("items", {})) for item in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value) if kind == "string" else float(value)
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):  # enums
        return value.value
    return value


def shape(obj: Any, schema: dict) -> dict:
    schema = _resolve(schema)
    required = set(schema.get("required", []))
    out: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        found, value = _lookup(obj, name)
        if not found:
            continue
        if value is None and name not in required and not _resolve(prop).get("nullable"):
            continue  # optional and absent: omit rather than send a null the schema forbids
        out[name] = _convert(value, prop)
    return out


def dump(obj: Any, schema_name: str) -> dict:
    return shape(obj, _schemas()[schema_name])


def dump_list(items: Any, schema_name: str) -> list[dict]:
    return [dump(item, schema_name) for item in items]


def pdf_attachment(document: Pdf) -> ConnexionResponse:
    """A PDF download: 200 `application/pdf` with the document's file name as an attachment."""
    return ConnexionResponse(status_code=200, body=document.content, mimetype="application/pdf",
                             content_type="application/pdf",
                             headers={"Content-Disposition": f'attachment; filename="{document.filename}"'})
