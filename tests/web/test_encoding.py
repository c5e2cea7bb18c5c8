"""The answers' JSON encoder (decabill/web/encoding.py): orjson, with integers beyond 64 bits written in exactly —
schemathesis stored a service type whose JSON held one, and reading it back answered 500; later an admin list
written by PostgreSQL (`Json`) echoing an offset beyond 64 bits did."""

import datetime as dt
import json
from decimal import Decimal

import orjson

from decabill.web.encoding import OrjsonJsonifier


def test_integers_beyond_64_bits_are_encoded_exactly_with_the_other_values_as_usual():
    body = OrjsonJsonifier(json).dumps({"big": 2**70, "at": dt.datetime(2026, 1, 1), "amount": Decimal("1.50")})
    assert json.loads(body) == {"big": 2**70, "at": "2026-01-01T00:00:00Z", "amount": 1.5}


def test_ordinary_answers_keep_the_compact_encoding():
    assert OrjsonJsonifier(json).dumps({"a": [1, "x", None]}) == b'{"a":[1,"x",null]}\n'


def test_integers_beyond_64_bits_next_to_json_written_elsewhere():
    written = orjson.Fragment('[{"id":"a","n":1}]')
    body = OrjsonJsonifier(json).dumps({"items": written, "total": 1, "offset": 2**70, "low": -(2**63) - 1,
                                        "nested": [{"max": 2**64 - 1, "beyond": 2**64}, (2**65, "x")], "flag": True})
    assert json.loads(body) == {"items": [{"id": "a", "n": 1}], "total": 1, "offset": 2**70, "low": -(2**63) - 1,
                                "nested": [{"max": 2**64 - 1, "beyond": 2**64}, [2**65, "x"]], "flag": True}
