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

from decabill.config import get_settings

from decabill.identity.principal import Principal, require_admin
from spec import OPENAPI_PATH

if TYPE_CHECKING:
    from decabill.catalog.public_cache import EncodedAnswer
    from decabill.invoicing.service import Pdf


@functools.cache
def _schemas() -> dict[str, dict]:
    with open(OPENAPI_PATH) as fh:
        return yaml.safe_load(fh)["components"]["schemas"]


_RESOLVED: dict[int, tuple[dict, dict]] = {}


def _resolve(schema: dict) -> dict:
    """`schema` with `$ref`s followed and `allOf` merged; memoised by identity (the spec's dicts live as long as
    the process), so shaping a response never resolves or merges a schema twice."""
    known = _RESOLVED.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    resolved = schema
    while "$ref" in resolved:
        resolved = _schemas()[resolved["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in resolved:  # `A + {extra properties}` (e.g. AdminInvoiceListItem): one merged object schema
        merged: dict = {"type": "object", "properties": {}, "required": []}
        for part in resolved["allOf"]:
            part = _resolve(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        merged["nullable"] = resolved.get("nullable", False)
        resolved = merged
    _RESOLVED[id(schema)] = (schema, resolved)
    return resolved


def principal(token_info: dict) -> Principal:
    return token_info["principal"]


def admin_only(handler: Callable) -> Callable:
    """Admin role required (403 `Forbidden resource` otherwise); the API key counts as admin."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_admin(principal(kwargs["token_info"]))
        return await handler(*args, **kwargs)

    return wrapper


_MISSING = object()


class _Field:
    """One property of a response schema, prepared once: its camelCase name, the attribute it is read from,
    whether an absent value may be omitted, and its (resolved) schema for the conversion."""

    __slots__ = ("name", "attribute", "omit_none", "schema", "kind")

    def __init__(self, name: str, prop: dict, required: bool):
        self.name = name
        self.attribute = inflection.underscore(name)
        self.schema = _resolve(prop)
        self.kind = self.schema.get("type")
        # optional and absent: omit rather than send a null the schema forbids
        self.omit_none = not required and not self.schema.get("nullable")

    def read(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            value = obj.get(self.name, _MISSING)
            return obj.get(self.attribute, _MISSING) if value is _MISSING else value
        value = getattr(obj, self.attribute, _MISSING)
        return getattr(obj, self.name, _MISSING) if value is _MISSING else value


_FIELDS: dict[int, tuple[dict, list[_Field]]] = {}


def _fields(schema: dict) -> list[_Field]:
    """The prepared properties of a resolved object schema (the per-field regexes run once per process)."""
    known = _FIELDS.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    required = set(schema.get("required", []))
    fields = [_Field(name, prop, name in required) for name, prop in schema.get("properties", {}).items()]
    _FIELDS[id(schema)] = (schema, fields)
    return fields


def _convert(value: Any, schema: dict, kind: str | None) -> Any:
    if value is None:
        return None
    if kind == "object" and "properties" in schema and not isinstance(value, (str, int, float)):
        return _shape_resolved(value, schema)
    if kind == "array":
        items = _resolve(schema.get("items", {}))
        item_kind = items.get("type")
        return [_convert(item, items, item_kind) for item in value]
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value) if kind == "string" else float(value)
    if hasattr(value, "value"):  # enums
        return value.value
    return value


def _shape_resolved(obj: Any, schema: dict) -> dict:
    out: dict[str, Any] = {}
    for field in _fields(schema):
        value = field.read(obj)
        if value is _MISSING or (value is None and field.omit_none):
            continue
        out[field.name] = _convert(value, field.schema, field.kind)
    return out


def shape(obj: Any, schema: dict) -> dict:
    return _shape_resolved(obj, _resolve(schema))


def dump(obj: Any, schema_name: str) -> dict:
    return shape(obj, _schemas()[schema_name])


def dump_list(items: Any, schema_name: str) -> list[dict]:
    return [dump(item, schema_name) for item in items]


def cacheable_json(answer: EncodedAnswer) -> ConnexionResponse:
    """200 with the encoded JSON and its ETag, or 304 when the client already holds that version. Clients and
    proxies revalidate every time by default (`PUBLIC_CACHE_MAX_AGE=0`): a catalogue change shows at once."""
    headers = {"ETag": answer.etag, "Cache-Control": f"public, max-age={get_settings().public_cache_max_age}"}
    sent = request.headers.get("if-none-match", "")
    if sent and (sent.strip() == "*" or answer.etag in (tag.strip().removeprefix("W/") for tag in sent.split(","))):
        return ConnexionResponse(status_code=304, headers=headers)
    return ConnexionResponse(status_code=200, body=answer.body, content_type="application/json", headers=headers)


def pdf_attachment(document: Pdf) -> ConnexionResponse:
    """A PDF download: 200 `application/pdf` with the document's file name as an attachment."""
    return ConnexionResponse(status_code=200, body=document.content, mimetype="application/pdf",
                             content_type="application/pdf",
                             headers={"Content-Disposition": f'attachment; filename="{document.filename}"'})
