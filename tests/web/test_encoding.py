"""The answers' JSON encoder (decabill/web/encoding.py): orjson, with the standard library for what orjson
refuses — schemathesis stored a service type whose JSON held an integer beyond 64 bits, and reading it back
answered 500."""

import datetime as dt
import json
from decimal import Decimal

from decabill.web.encoding import OrjsonJsonifier


def test_integers_beyond_64_bits_are_encoded_exactly_with_the_other_values_as_usual():
    body = OrjsonJsonifier(json).dumps({"big": 2**70, "at": dt.datetime(2026, 1, 1), "amount": Decimal("1.50")})
    assert json.loads(body) == {"big": 2**70, "at": "2026-01-01T00:00:00Z", "amount": 1.5}


def test_ordinary_answers_keep_the_compact_encoding():
    assert OrjsonJsonifier(json).dumps({"a": [1, "x", None]}) == b'{"a":[1,"x",null]}\n'
