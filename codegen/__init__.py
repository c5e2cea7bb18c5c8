"""Generate the Socket.IO bindings ``decabill/realtime/_generated.py`` from the spec.

Mapping rule: channel address ``<ns>/<event>`` becomes Socket.IO event ``<event>`` in
namespace ``/<ns>``. Operations with ``action: send`` (the client sends) become
server-side handlers; operations with ``action: receive`` become typed emitters.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "spec" / "asyncapi.yaml"
OUTPUT_PATH = ROOT / "decabill" / "realtime" / "_generated.py"
LINE_LENGTH = 88
DIRECTIONS = {"send": "inbound", "receive": "outbound"}
RESERVED_EMITTER_NAMES = {"sio", "namespace", "validate_outbound"}
EXPORTS = [  # static names of the generated module; the schema constants are added
    "DEFAULT_NAMESPACE",
    "EVENTS",
    "FORMAT_CHECKER",
    "INBOUND_EVENTS",
    "OUTBOUND_EVENTS",
    "VALIDATORS",
    "ConnectionHooks",
    "DashboardHandlers",
    "Emitter",
    "EventSpec",
    "OutboundPayloadError",
    "Payload",
    "normalize_namespace",
    "payload_problem",
    "register",
]


class SpecError(ValueError):
    """The AsyncAPI document does not fit the Socket.IO mapping rule."""


@dataclass(frozen=True)
class Event:
    name: str  # Socket.IO event name, e.g. "subscribeDashboardStatus"
    direction: str  # "inbound" (client -> server) or "outbound" (server -> client)
    operation: str  # AsyncAPI operation id
    message: str  # AsyncAPI message name
    schema: dict[str, Any]  # resolved payload schema

    @property
    def method(self) -> str:
        return snake_case(self.name)

    @property
    def constant(self) -> str:
        return snake_case(self.message).upper() + "_SCHEMA"


def snake_case(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def resolve(node: Any, root: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Return a copy of ``node`` with every local ``$ref`` replaced by its target."""
    if isinstance(node, list):
        return [resolve(item, root, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" not in node:
        return {key: resolve(value, root, seen) for key, value in node.items()}
    ref = node["$ref"]
    if not ref.startswith("#/") or ref in seen:
        raise SpecError(f"unsupported or circular $ref: {ref}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return resolve(target, root, (*seen, ref))


def collect(spec: dict[str, Any]) -> tuple[str, list[Event]]:
    """Return the default namespace and the events of ``spec``, sorted by name."""
    doc = resolve(spec, spec)
    namespaces, events = set(), []
    for op_id, operation in doc["operations"].items():
        address = operation["channel"]["address"]
        namespace, _, event = address.partition("/")
        if not namespace or not event or "/" in event:
            raise SpecError(f"{op_id}: address {address!r} is not '<ns>/<event>'")
        channel_messages = list(operation["channel"]["messages"].values())
        messages = operation.get("messages") or channel_messages
        if len(messages) != 1:
            raise SpecError(f"{op_id}: exactly one message per operation is supported")
        schema = messages[0].get("payload", {})
        jsonschema.Draft202012Validator.check_schema(schema)
        namespaces.add(namespace)
        direction = DIRECTIONS[operation["action"]]
        events.append(Event(event, direction, op_id, messages[0]["name"], schema))
    events.sort(key=lambda e: e.name)
    if len(namespaces) != 1:
        raise SpecError(f"expected one namespace, found {sorted(namespaces)}")
    names = [e.name for e in events]
    if len(set(names)) != len(names):
        raise SpecError(f"duplicate event names in {names}")
    for e in events:
        if not e.method.isidentifier() or keyword.iskeyword(e.method):
            raise SpecError(f"event {e.name!r} does not give a Python method name")
        if e.direction == "outbound" and e.method in RESERVED_EMITTER_NAMES:
            raise SpecError(f"event {e.name!r} clashes with an Emitter attribute")
    if not any(e.name == "error" and e.direction == "outbound" for e in events):
        raise SpecError("the spec must define an outbound 'error' event")
    return "/" + namespaces.pop(), events


def literal(value: Any, indent: int = 0, head: int = 0, tail: int = 0) -> str:
    """Python literal for JSON data, black-style: kept on one line when the whole line
    (``indent`` + ``head`` chars before, ``tail`` chars after) fits, else exploded."""
    flat = _flat(value)
    if indent + head + len(flat) + tail <= LINE_LENGTH:
        return flat
    pad = " " * (indent + 4)
    if isinstance(value, str):  # implicit concatenation in parentheses
        pieces, limit = [""], LINE_LENGTH - len(pad)
        for word in re.findall(r"\S*\s*", value):
            if pieces[-1] and len(_flat(pieces[-1] + word)) > limit:
                pieces.append("")
            pieces[-1] += word
        if len(pieces) == 1:
            return flat
        return (
            "(\n" + "".join(f"{pad}{_flat(p)}\n" for p in pieces) + " " * indent + ")"
        )
    if not isinstance(value, (dict, list)):
        return flat
    if isinstance(value, dict):
        lines = [
            f"{pad}{_flat(k)}: {literal(v, indent + 4, len(_flat(k)) + 2, 1)},"
            for k, v in value.items()
        ]
        opening, closing = "{", "}"
    else:
        lines = [f"{pad}{literal(v, indent + 4, 0, 1)}," for v in value]
        opening, closing = "[", "]"
    return opening + "\n" + "\n".join(lines) + "\n" + " " * indent + closing


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_flat(k)}: {_flat(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise SpecError(f"cannot render {value!r} as a Python literal")


def call(head: str, args: list[str], tail: str = "", indent: int = 0) -> str:
    """``head(args)tail`` formatted like black: one line, else the arguments on one
    indented line, else one argument per line with a trailing comma."""
    pad, joined = " " * indent, ", ".join(args)
    if len(f"{pad}{head}({joined}){tail}") <= LINE_LENGTH:
        return f"{pad}{head}({joined}){tail}"
    if len(f"{pad}    {joined}") <= LINE_LENGTH:
        return f"{pad}{head}(\n{pad}    {joined}\n{pad}){tail}"
    return (
        f"{pad}{head}(\n" + "".join(f"{pad}    {a},\n" for a in args) + f"{pad}){tail}"
    )


def render(spec_path: Path = SPEC_PATH) -> str:
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    namespace, events = collect(spec)
    try:
        source = spec_path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        source = spec_path.name
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(literal=literal, call=call)
    return env.get_template("socketio.py.j2").render(
        source=source,
        info=spec["info"],
        namespace=namespace,
        events=events,
        inbound=[e for e in events if e.direction == "inbound"],
        outbound=[e for e in events if e.direction == "outbound"],
        by_message=sorted(events, key=lambda e: e.constant),
        exports=sorted(EXPORTS + [e.constant for e in events], key=_export_order),
    )


def _export_order(name: str) -> tuple[int, str]:
    """isort-style ``__all__`` order: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)
