"""Response shapes from the contract: `dump(obj, "UserResponse")` reads the component schema of that name from
spec/openapi.yaml and copies each declared property from the object (camelCase property → snake_case
attribute), so the spec is the single description of every response shape — there is no second, hand-kept DTO
per field. The handlers shape their responses with it, and webhook events their payloads (the same schemas).
"""

from __future__ import annotations

import datetime as dt
import keyword
import operator
import uuid
from decimal import Decimal
from collections.abc import Callable
from typing import Any, NamedTuple

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
        if type(value) is Json:
            return value
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
        return lambda values: (values if type(values) is Json  # written by the database
                               else [None if item is None else convert_item(item) for item in values])
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
_LIST_SHAPERS: PerObject[dict, Callable[[Any], list[dict]]] = PerObject()


def _shaper(schema: dict) -> Callable[[Any], dict]:
    """The function that shapes an object (or a dict) as the resolved object schema says, made once per schema
    and process: each property's name, attribute, omission and conversion are decided here, not per value. For
    objects it is generated as straight-line code — one block per property, no loop over field descriptions (a
    page of 20 admin invoices × 17 properties is ~340 of these blocks). A value of a plain type the schema passes
    through (str, int, bool, float) is copied without a call; another scalar is converted by its type's function;
    anything else (objects, arrays, enums) by the property's converter. That generic shaper shapes dicts and what
    a class's own shaper (`_ClassShaper`, made at the first object of each class) hands back to it."""
    known = _SHAPERS.get(schema)
    if known is not None:
        return known
    made: list[Callable[[Any], dict]] = []
    # registered before the properties' converters are made: a schema that contains itself finds its shaper
    _SHAPERS.put(schema, lambda obj: made[0](obj))
    fields = [(field.name, field.attribute, field.omit_none, _by_type(field.schema), _converter(field.schema))
              for field in _fields(schema)]
    shape_dict = _dict_shaper(fields)
    shape_object, shape_list = _by_class(fields, _generated_shaper(fields, shape_dict), shape_dict)
    made.append(shape_object)
    _LIST_SHAPERS.put(schema, shape_list)
    return _SHAPERS.put(schema, shape_object)


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


def _read(attribute: str) -> str:
    """The source that reads the attribute of `obj` (by `getattr` when its name is not an identifier)."""
    return (f"obj.{attribute}" if attribute.isidentifier() and not keyword.iskeyword(attribute)
            else f"getattr(obj, {attribute!r})")


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
        lines += ["    try:",
                  f"        value = {_read(attribute)}",
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


#: the classes a schema's shaper keeps a shaper of its own for (beyond: the generic one, nothing kept)
_CLASSES_PER_SCHEMA = 64


def _by_class(fields: list[tuple[str, str, bool, dict, Callable[[Any], Any]]], generic: Callable[[Any], dict],
              shape_dict: Callable[[dict], dict]) -> tuple[Callable[[Any], dict], Callable[[Any], list[dict]]]:
    """The shaper of a schema, and of a list of it: for each class of object it shapes, the function made for
    that class (`_ClassShaper`), found by the object's exact type; dicts by `shape_dict`."""
    shapers: dict[type, Callable[[Any], dict]] = {dict: shape_dict}

    def first_of_class(obj: Any) -> dict:
        if isinstance(obj, dict):
            made = shape_dict
        elif len(shapers) >= _CLASSES_PER_SCHEMA:
            return generic(obj)
        else:
            made = _ClassShaper(type(obj), fields, generic, shapers).shape_anew
        shapers[type(obj)] = made
        return made(obj)

    namespace: dict[str, Any] = {"known": shapers.get, "first_of_class": first_of_class}
    exec("def shape_object(obj):\n"  # noqa: S102 - fixed source
         "    shape = known(type(obj))\n"
         "    return first_of_class(obj) if shape is None else shape(obj)\n"
         "def shape_list(items):\n"
         "    return [(known(type(obj)) or first_of_class)(obj) for obj in items]", namespace)
    return namespace["shape_object"], namespace["shape_list"]


def _type_attribute(cls: type, name: str) -> Any:
    """What the class (its MRO) holds under `name`, as attribute lookup finds it; `_MISSING` if nothing."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return _MISSING


def _plain_lookup(cls: type) -> bool:
    """Whether reading an attribute of an instance is the standard lookup (no `__getattribute__` of its own)."""
    return all(klass in (object, tuple) or "__getattribute__" not in vars(klass) for klass in cls.__mro__)


#: the conversions of `_SCALAR_BY_TYPE` written inline, for a value of the type they were chosen by
_INLINE: dict[Any, str] = {_same: "{v}", str: "str({v})", float: "float({v})", dt.date.isoformat: "{v}.isoformat()"}


#: from how many timestamp properties on a class's shaper writes them with one call (`_ClassShaper._made`)
_TIMESTAMPS_BATCHED = 4


class _ClassShaper:
    """The shaper of one schema for objects of one class, as the source of one function that gives the same
    results as the generic one (`_generated_shaper`) in less time: it is remade as it learns about the class.

    * Reading: a property of the class that is an attribute getter of a path (`_of_invoice`: `invoice.status`) is
      read along that path, the path's first attribute once per object; another property by calling its getter;
      anything else as an attribute. An AttributeError while reading hands the object to the generic shaper, and
      the properties that raised it are read as the generic shaper reads them (else the camelCase attribute,
      else left out) from then on.
    * Converting: a property's value of the type first seen for it (when the type has a scalar conversion:
      `_STRING_BY_TYPE`, `_OTHER_BY_TYPE`) is converted by that conversion written inline, behind a check of the
      exact type; None is None; any other value by the generic rules (`_dict_shaper`'s).
    * The result is one dict display in the properties' order, the properties left out removed from it."""

    def __init__(self, cls: type, fields: list[tuple[str, str, bool, dict, Callable[[Any], Any]]],
                 generic: Callable[[Any], dict], shapers: dict[type, Callable[[Any], dict]]) -> None:
        self.cls, self.fields, self.generic, self.shapers = cls, fields, generic, shapers
        self.types: list[type | None] = [None] * len(fields)
        self.guarded = [False] * len(fields)  # read as the generic shaper reads them
        plain = _plain_lookup(cls)
        self.readers = [self._reader(attribute, plain) for _, attribute, _, _, _ in fields]

    def shape_anew(self, obj: Any) -> dict:
        """Make the function with what is known of the class now, and shape with it."""
        made = self.shapers[self.cls] = self._made()
        return made(obj)

    def _learned(self) -> None:
        self.shapers[self.cls] = self.shape_anew  # remade at its next object

    def _failed(self, obj: Any) -> dict:
        """An AttributeError while reading: the object shaped by the generic shaper, and the properties that raise
        it read as the generic shaper reads them from now on."""
        for index, (_, attribute, _, _, _) in enumerate(self.fields):
            if not self.guarded[index]:
                how, detail = self.readers[index]
                try:
                    if how == "path":
                        operator.attrgetter(".".join(detail))(obj)
                    elif how == "getter":
                        detail(obj)
                    else:
                        getattr(obj, attribute)
                except AttributeError:
                    self.guarded[index] = True
                    self._learned()
        return self.generic(obj)

    def _fallback(self, index: int) -> Callable[[Any], Any]:
        """The generic conversion of a non-null value of the property, which learns the value's type when the
        property has none yet."""
        _, _, _, by_type, convert = self.fields[index]

        def fallback(value: Any) -> Any:
            known = by_type.get(type(value))
            converted = value if known is _same else known(value) if known is not None else convert(value)
            if self.types[index] is None and type(value) in by_type:  # (after `convert`: a driver's uuid type)
                self.types[index] = type(value)
                self._learned()
            return converted

        return fallback

    def _reader(self, attribute: str, plain: bool) -> tuple[str, Any]:
        """How a property is read: ("path", (first attribute, rest of the path)), ("getter", fget) or ("attribute", None)."""
        if not plain or not attribute.isidentifier() or keyword.iskeyword(attribute):
            return "attribute", None
        found = _type_attribute(self.cls, attribute)
        if type(found) is not property or found.fget is None:
            return "attribute", None
        getter = found.fget
        if type(getter) is operator.attrgetter:
            paths = getter.__reduce__()[1]
            names = paths[0].split(".") if len(paths) == 1 and isinstance(paths[0], str) else []
            if len(names) > 1 and all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
                first = _type_attribute(self.cls, names[0])
                # read once per object: an instance's own attribute (not a property or other descriptor)
                if first is _MISSING or not hasattr(type(first), "__get__"):
                    return "path", (names[0], ".".join(names[1:]))
        return "getter", getter

    def _made(self) -> Callable[[Any], dict]:
        namespace: dict[str, Any] = {"MISSING": _MISSING, "failed": self._failed, "dumps": orjson.dumps,
                                     "loads": orjson.loads,
                                     "UTC_Z": orjson.OPT_UTC_Z, "UTC": dt.timezone.utc, "DATETIME": dt.datetime}
        lines = ["def shape_object(obj):", "    try:"]
        firsts: dict[str, str] = {}
        display, removals = [], []
        # several timestamps: written by one orjson call (and read back as strings by another) when each is a UTC
        # datetime or None — a third of writing them one by one from four on (subscriptions have nine)
        batch = [index for index, (_, _, _, by_type, _) in enumerate(self.fields) if not self.guarded[index]
                 and self.types[index] is not None and by_type[self.types[index]] is _utc_datetime]
        if len(batch) < _TIMESTAMPS_BATCHED:
            batch = []
        deferred: list[str] = []
        for index, (name, attribute, omit_none, by_type, convert) in enumerate(self.fields):
            raw, value = f"raw_{index}", f"value_{index}"
            if self.guarded[index]:
                lines += ["        try:",
                          f"            {raw} = {_read(attribute)}",
                          "        except AttributeError:",
                          f"            {raw} = getattr(obj, {name!r}, MISSING)"]
            else:
                how, detail = self.readers[index]
                if how == "path":
                    first, rest = detail
                    if first not in firsts:
                        firsts[first] = f"first_{len(firsts)}"
                        lines.append(f"        {firsts[first]} = obj.{first}")
                    lines.append(f"        {raw} = {firsts[first]}.{rest}")
                elif how == "getter":
                    namespace[f"getter_{index}"] = detail
                    lines.append(f"        {raw} = getter_{index}(obj)")
                else:
                    lines.append(f"        {raw} = {_read(attribute)}")
            if not by_type:  # objects and arrays: their converter
                namespace[f"convert_{index}"] = convert
                other = f"convert_{index}({raw})"
            else:
                namespace[f"fallback_{index}"] = self._fallback(index)
                other = f"fallback_{index}({raw})"
            converted = f"None if {raw} is None else {other}"
            seen = self.types[index]
            if seen is not None:
                namespace[f"type_{index}"] = seen
                known = by_type[seen]
                if known is _utc_datetime:
                    converted = (f"dumps({raw}, None, UTC_Z)[1:-1].decode() "
                                 f"if type({raw}) is DATETIME and {raw}.tzinfo is UTC else {converted}")
                elif known is _same:
                    converted = f"{raw} if {raw} is None or type({raw}) is type_{index} else {other}"
                else:
                    if known not in _INLINE:
                        namespace[f"known_{index}"] = known
                    inline = _INLINE.get(known, f"known_{index}({{v}})").format(v=raw)
                    converted = f"{inline} if type({raw}) is type_{index} else {converted}"
            if self.guarded[index]:
                converted = f"MISSING if {raw} is MISSING else {converted}"
            if index not in batch:
                lines.append(f"        {value} = {converted}")
            else:
                deferred.append(f"            {value} = {converted}")
                if index == batch[-1]:
                    utc = " and ".join(f"({f'raw_{i}'} is None or type(raw_{i}) is DATETIME and raw_{i}.tzinfo is UTC)"
                                       for i in batch)
                    lines += [f"        if {utc}:",
                              f"            {', '.join(f'value_{i}' for i in batch)}, = "
                              f"loads(dumps(({''.join(f'raw_{i}, ' for i in batch)}), None, UTC_Z))",
                              "        else:", *deferred]
            display.append(f"{name!r}: {value}")
            absent = [f"{raw} is None"] if omit_none else []
            absent += [f"{raw} is MISSING"] if self.guarded[index] else []
            if absent:
                removals += [f"        if {' or '.join(absent)}:", f"            del out[{name!r}]"]
        lines += ["    except AttributeError:", "        pass", "    else:",
                  f"        out = {{{', '.join(display)}}}", *removals, "        return out",
                  "    return failed(obj)"]
        exec("\n".join(lines), namespace)  # noqa: S102 - source made here from the spec's property names (repr'd)
        return namespace["shape_object"]


def shape(obj: Any, schema: dict) -> dict:
    return _shaper(_resolve(schema))(obj)


def dump(obj: Any, schema_name: str) -> dict:
    return shape(obj, _schemas()[schema_name])


def dump_list(items: Any, schema_name: str) -> list[dict] | Json:
    if type(items) is Json:  # written by the database (`decabill.repository.json_object`)
        return items
    schema = _resolve(_schemas()[schema_name])
    shape_list = _LIST_SHAPERS.get(schema)
    if shape_list is None:
        _shaper(schema)
        shape_list = _LIST_SHAPERS.get(schema)
    return shape_list(items)


# --- the same shapes written by PostgreSQL -------------------------------------------------------------------
#
# A list read on PostgreSQL can have the database write its items' JSON while it reads the rows
# (`decabill.repository.json_object`): the process then neither converts the rows to Python values nor shapes and
# encodes them — for the admin's page of 20 invoices that was about a third of the server's work per request
# (docs/performance.md, "Lists written as JSON by PostgreSQL"). `json_fields` describes a schema for that writer:
# the same names, omissions and kinds as the shapers above use.


class JsonField(NamedTuple):
    """One property as the database writes it: its name, the attribute (snake_case) its value is given under, its
    kind and format (`type`, `format` of the schema), and whether an absent value is left out (else null)."""

    name: str
    attribute: str
    kind: str | None
    format: str | None
    omit_none: bool


_JSON_FIELDS: PerObject[dict, tuple[JsonField, ...]] = PerObject()


def json_fields(schema_name: str) -> tuple[JsonField, ...]:
    """The properties of a flat object schema of the contract, for `decabill.repository.json_object` (ValueError
    for a schema with an object or array property: those are not written by the database)."""
    def made(schema: dict) -> tuple[JsonField, ...]:
        fields = tuple(JsonField(field.name, field.attribute, field.kind, field.schema.get("format"), field.omit_none)
                       for field in _fields(schema))
        nested = [field.name for field in fields if field.kind in ("object", "array")]
        if nested:
            raise ValueError(f"{schema_name}: {nested} cannot be written by the database")
        return fields

    return _JSON_FIELDS.of(_resolve(_schemas()[schema_name]), made)


Json = orjson.Fragment
"""JSON text written elsewhere (a list PostgreSQL wrote, `decabill.repository.json_object`), put into a response as
it is."""
