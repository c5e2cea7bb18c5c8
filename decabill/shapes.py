"""Response shapes from the contract: `dump(obj, "UserResponse")` reads the component schema of that name from
spec/openapi.yaml and copies each declared property from the object (camelCase property → snake_case
attribute), so the spec is the single description of every response shape — there is no second, hand-kept DTO
per field. The handlers shape their responses with it, and webhook events their payloads (the same schemas).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from decimal import Decimal
from typing import Any

import inflection
import yaml

from spec import OPENAPI_PATH


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
