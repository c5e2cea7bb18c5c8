"""Input checks every domain shares: rules the spec's schemas cannot express (lengths of columns, decimal
strings, JSON that every backend can store). The spec validator has already checked types, enums and
required fields."""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any

from decabill.errors import BadRequest

NUMERIC_STRING = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
PRICE_LIMIT = Decimal("100000000")  # NUMERIC(12,4) in the reference: below 10^8
PERCENT_LIMIT = Decimal("10000")  # NUMERIC(8,4): below 10^4
MAX_INTERVAL_VALUE = 1000
MAX_DAYS = 36500  # 100 years of commitment or notice is already absurd
MAX_JSON_DEPTH = 32
MONEY_QUANTUM = Decimal("0.0001")


def text(value: str, label: str, *, max_length: int | None = None, required: bool = False) -> str:
    """A string every database can store: no NUL characters, valid UTF-8, within the column width."""
    if required and not value.strip():
        raise BadRequest(f"{label} is required")
    if max_length is not None and len(value) > max_length:
        raise BadRequest(f"{label} must be at most {max_length} characters")
    _storable(value, label)
    return value


def timestamp(value: str, label: str) -> dt.datetime:
    """An ISO 8601 / RFC 3339 date-time in UTC (no offset = UTC); 400 `<label> must be an ISO date string`."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip().upper())  # RFC 3339 allows a lower-case t and z
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError, AttributeError):
        raise BadRequest(f"{label} must be an ISO date string") from None


def _storable(value: str, label: str) -> None:
    if "\x00" in value:
        raise BadRequest(f"{label} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{label} must be valid Unicode text") from None


def json_value(value: Any, label: str, _depth: int = 0) -> Any:
    """JSON that PostgreSQL's JSONB and SQLite both store and give back unchanged (no NUL, no NaN)."""
    if _depth > MAX_JSON_DEPTH:
        raise BadRequest(f"{label} is nested too deeply")
    if isinstance(value, str):
        _storable(value, label)
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{label} must not contain NaN or Infinity")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(str(key), label)
            json_value(item, label, _depth + 1)
    elif isinstance(value, list):
        for item in value:
            json_value(item, label, _depth + 1)
    return value


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest (a scalar: 0), walked without recursion."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth + 1)
        pending.extend((child, depth + 1) for child in item)
    return deepest


def decimal_number(value: Any, label: str) -> Decimal:
    """A JSON number or a plain numeric string (no spaces, no exponent) as the exact, finite decimal the
    client wrote; anything else (NaN, Infinity, `abc`, `1e999999`, `' 5 '`) is refused, never read as 0."""
    if isinstance(value, bool):
        raise BadRequest(f"{label} must be a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"{label} must be a finite number")
        return Decimal(repr(value))  # the decimal the client wrote, not the float's binary noise
    if isinstance(value, str):
        if not NUMERIC_STRING.fullmatch(value):
            raise BadRequest(f"{label} must be a numeric string")
        return Decimal(value)
    raise BadRequest(f"{label} must be a number")


def money(value: Any, label: str, *, limit: Decimal = PRICE_LIMIT, negative: bool = False) -> Decimal:
    """The one money rule: a finite decimal with at most 4 places (stored exactly, never rounded silently),
    below `limit` in magnitude; negative (and `-0`) only where `negative` allows it. Returns 4 places."""
    amount = decimal_number(value, label)
    if not negative and amount.is_signed():
        raise BadRequest(f"{label} must not be negative")
    if abs(amount) >= limit:
        raise BadRequest(f"{label} must be between -{limit} and {limit}" if negative
                         else f"{label} must be less than {limit}")
    exact = amount.quantize(MONEY_QUANTUM)
    if exact != amount:
        raise BadRequest(f"{label} must have at most 4 decimal places")
    return exact + 0  # -0 → 0


def decimal_string(value: str, label: str, *, limit: Decimal = PRICE_LIMIT) -> Decimal:
    """`"4.50"` → Decimal("4.5000"): a non-negative money string (`money`)."""
    if not isinstance(value, str):
        raise BadRequest(f"{label} must be a numeric string")
    return money(value, label, limit=limit)


def bounded_int(value: int, label: str, minimum: int, maximum: int) -> int:
    if value < minimum:
        raise BadRequest(f"{label} must not be less than {minimum}")
    if value > maximum:
        raise BadRequest(f"{label} must not be greater than {maximum}")
    return value


def ordering_highlights(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each item is exactly `{icon, text}` (the spec checks types, lengths and the 50-item cap)."""
    cleaned = []
    for index, item in enumerate(items):
        extra = sorted(set(item) - {"icon", "text"})
        if extra:
            raise BadRequest(f"orderingHighlights.{index}.property {extra[0]} should not exist")
        cleaned.append({"icon": text(item["icon"], "Icon"), "text": text(item["text"], "Text")})
    return cleaned
