"""JSON responses encoded with orjson: Connexion's own encoder (the standard library's, with a Python `default`
per datetime, Decimal and UUID) cost more than shaping a list answer; orjson encodes the same JSON in a fraction
of it. The values keep Connexion's encodings: a datetime without an offset is UTC (`Z`), a Decimal a number."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import orjson
from connexion.jsonifier import Jsonifier

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat("T") if value.tzinfo else value.isoformat("T") + "Z"
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ORJSON_INTEGERS = (-(2**63), 2**64 - 1)  # what orjson encodes (signed and unsigned 64 bits)


def _big_integers_marked(value: Any, big: list[int], mark: str) -> Any:
    """`value` with every integer orjson refuses (beyond 64 bits) replaced by the text `mark` + its index in `big`."""
    if type(value) is int and not _ORJSON_INTEGERS[0] <= value <= _ORJSON_INTEGERS[1]:
        big.append(value)
        return f"{mark}{len(big) - 1}"
    if isinstance(value, dict):
        return {key: _big_integers_marked(item, big, mark) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_big_integers_marked(item, big, mark) for item in value]
    return value


def _with_big_integers(data: Any) -> bytes:
    """orjson's encoding of `data` with its integers beyond 64 bits written exactly: each is encoded as a marked
    string first, then put in place of it. (The standard library encodes such integers but not the JSON a list
    carries as written by PostgreSQL, `shapes.Json`: an echoed `offset` beyond 64 bits answered 500 with it.)"""
    big: list[int] = []
    mark = f"\ue000{uuid.uuid4().hex}:"  # no answer holds this text
    encoded = orjson.dumps(_big_integers_marked(data, big, mark), default=_default, option=_OPTIONS)
    for index, number in enumerate(big):
        encoded = encoded.replace(f'"{mark}{index}"'.encode(), str(number).encode(), 1)
    return encoded


class OrjsonJsonifier(Jsonifier):
    """Connexion's JSON encoding of handler answers (request bodies are still parsed by Connexion)."""

    def dumps(self, data: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
        try:
            return orjson.dumps(data, default=_default, option=_OPTIONS)
        except orjson.JSONEncodeError as exc:
            if "64-bit" not in str(exc):
                raise
            # a stored JSON value (e.g. a service type's config) or an echoed offset may hold an integer beyond
            # 64 bits, which orjson refuses; encoded exactly, as Connexion's own encoder did
            return _with_big_integers(data)
