"""Response shapes from the contract: `dump(obj, "UserResponse")` reads the component schema of that name from
spec/openapi.yaml and copies each declared property from the object (camelCase property → snake_case
attribute), so the spec is the single description of every response shape — there is no second, hand-kept DTO
per field. The handlers shape their responses with it, and webhook events their payloads (the same schemas).
"""

from __future__ import annotations

import datetime as dt
import keyword
import uuid
from decimal import Decimal
from collections.abc import Callable
from typing import Any

import inflection
import orjson

from decabill.memo import PerObject
from spec import openapi_document


def _schemas() -> dict[str, dict]:
    return openapi_document()["components"]["schemas"]


_RESOLVED: PerObject[dict, dict] = PerObject()


def _resolve(schema: dict) -> dict:
    """`schema` with `$ref`s followed and `allOf` merged; memoised by identity (the spec's dicts live as long as
    the process), so shaping a response never resolves or merges a schema twice."""
    known = _RESOLVED.get(schema)
    if known is not None:
        return known
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
    _RESOLVED.put(schema, resolved)
    return resolved


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


_FIELDS: PerObject[dict, list[_Field]] = PerObject()


def _fields(schema: dict) -> list[_Field]:
    """The prepared properties of a resolved object schema (the per-field regexes run once per process)."""
    def made(schema: dict) -> list[_Field]:
        required = set(schema.get("required", []))
        return [_Field(name, prop, name in required) for name, prop in schema.get("properties", {}).items()]

    return _FIELDS.of(schema, made)


def _convert(value: Any, schema: dict, kind: str | None) -> Any:
    """The generic conversion of one value (any type) to what the schema's JSON holds."""
    if value is None:
        return None
    if kind == "object" and "properties" in schema and not isinstance(value, (str, int, float)):
        return _shaper(schema)(value)
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


def _utc_datetime(value: dt.datetime) -> Any:
    if value.tzinfo is dt.timezone.utc:  # what the drivers return for timestamptz: already UTC
        # orjson writes the text `isoformat()[:-6] + "Z"` gives (microseconds only when there are any) in a
        # fraction of the time: `isoformat` of an aware value was ~9 % of a list of subscriptions (8 per row)
        return orjson.dumps(value, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _same(value: Any) -> Any:
    return value


#: conversions by the value's exact type for the scalar kinds — the same results as `_convert`, one dict lookup
#: instead of its chain of isinstance checks; other types (enums, subclasses) take `_convert`
_SCALAR_BY_TYPE: dict[type, Callable[[Any], Any]] = {
    str: _same, bool: _same, int: _same, float: _same,
    dt.datetime: _utc_datetime, dt.date: dt.date.isoformat, uuid.UUID: str,
}


def _converter(schema: dict) -> Callable[[Any], Any]:
    """`_convert` for one resolved schema, decided once: the function that converts a non-null value of it."""
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        shape_object = _shaper(schema)
        return lambda value: value if isinstance(value, (str, int, float)) else shape_object(value)
    if kind == "array":
        items = _resolve(schema.get("items", {}))
        convert_item = _converter(items)
        return lambda values: [None if item is None else convert_item(item) for item in values]
    by_type, generic = _by_type(schema), _generic(schema)
    return lambda value: by_type.get(type(value), generic)(value)


_STRING_BY_TYPE = {**_SCALAR_BY_TYPE, Decimal: str}
_OTHER_BY_TYPE = {**_SCALAR_BY_TYPE, Decimal: float}


def _by_type(schema: dict) -> dict[type, Callable[[Any], Any]]:
    """The scalar conversions by the value's exact type for this schema (none for objects and arrays)."""
    kind = schema.get("type")
    if kind in ("object", "array"):
        return {}
    return _STRING_BY_TYPE if kind == "string" else _OTHER_BY_TYPE


def _generic(schema: dict) -> Callable[[Any], Any]:
    kind = schema.get("type")

    def convert(value: Any) -> Any:
        if isinstance(value, uuid.UUID):  # a driver's own uuid type (asyncpg's): by its type from now on
            _STRING_BY_TYPE[type(value)] = _OTHER_BY_TYPE[type(value)] = str
        return _convert(value, schema, kind)

    return convert


_SHAPERS: PerObject[dict, Callable[[Any], dict]] = PerObject()


def _shaper(schema: dict) -> Callable[[Any], dict]:
    """The function that shapes an object (or a dict) as the resolved object schema says, made once per schema
    and process: each property's name, attribute, omission and conversion are decided here, not per value. For
    objects it is generated as straight-line code — one block per property, no loop over field descriptions (a
    page of 20 admin invoices × 17 properties is ~340 of these blocks). A value of a plain type the schema passes
    through (str, int, bool, float) is copied without a call; another scalar is converted by its type's function;
    anything else (objects, arrays, enums) by the property's converter."""
    known = _SHAPERS.get(schema)
    if known is not None:
        return known
    made: list[Callable[[Any], dict]] = []
    # registered before the properties' converters are made: a schema that contains itself finds its shaper
    _SHAPERS.put(schema, lambda obj: made[0](obj))
    fields = [(field.name, field.attribute, field.omit_none, _by_type(field.schema), _converter(field.schema))
              for field in _fields(schema)]
    made.append(_generated_shaper(fields, _dict_shaper(fields)))
    return _SHAPERS.put(schema, made[0])


def _dict_shaper(fields: list[tuple[str, str, bool, dict, Callable[[Any], Any]]]) -> Callable[[dict], dict]:
    """The shaper for a dict: each property by its camelCase key, else its snake_case one."""

    def shape_dict(obj: dict) -> dict:
        out: dict[str, Any] = {}
        for name, attribute, omit_none, by_type, convert in fields:
            value = obj.get(name, _MISSING)
            if value is _MISSING:
                value = obj.get(attribute, _MISSING)
            if value is None:
                if not omit_none:
                    out[name] = None
                continue
            if value is _MISSING:
                continue
            known = by_type.get(type(value))
            out[name] = value if known is _same else known(value) if known is not None else convert(value)
        return out

    return shape_dict


def _generated_shaper(fields: list[tuple[str, str, bool, dict, Callable[[Any], Any]]],
                      shape_dict: Callable[[dict], dict]) -> Callable[[Any], dict]:
    """The shaper for an object, as the source of one function: per property, its attribute (else the camelCase
    one, else left out), null or omitted when None, and the conversion by the value's type. The same results
    as `_dict_shaper`'s rules, in the properties' order."""
    namespace: dict[str, Any] = {"MISSING": _MISSING, "SAME": _same, "shape_dict": shape_dict}
    lines = ["def shape_object(obj):",
             "    if isinstance(obj, dict):",
             "        return shape_dict(obj)",
             "    out = {}"]
    for index, (name, attribute, omit_none, by_type, convert) in enumerate(fields):
        namespace[f"by_type_{index}"], namespace[f"convert_{index}"] = by_type, convert
        read = (f"obj.{attribute}" if attribute.isidentifier() and not keyword.iskeyword(attribute)
                else f"getattr(obj, {attribute!r})")
        lines += ["    try:",
                  f"        value = {read}",
                  "    except AttributeError:",
                  f"        value = getattr(obj, {name!r}, MISSING)",
                  "    if value is None:",
                  f"        {'pass' if omit_none else f'out[{name!r}] = None'}",
                  "    elif value is not MISSING:",
                  f"        known = by_type_{index}.get(type(value))",
                  "        if known is SAME:",
                  f"            out[{name!r}] = value",
                  "        elif known is not None:",
                  f"            out[{name!r}] = known(value)",
                  "        else:",
                  f"            out[{name!r}] = convert_{index}(value)"]
    lines.append("    return out")
    exec("\n".join(lines), namespace)  # noqa: S102 - source made here from the spec's property names (repr'd)
    return namespace["shape_object"]


def shape(obj: Any, schema: dict) -> dict:
    return _shaper(_resolve(schema))(obj)


def dump(obj: Any, schema_name: str) -> dict:
    return shape(obj, _schemas()[schema_name])


def dump_list(items: Any, schema_name: str) -> list[dict]:
    shape_object = _shaper(_resolve(_schemas()[schema_name]))
    return [shape_object(item) for item in items]
