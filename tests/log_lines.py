"""Reading a process's log as what it is: one JSON object a line (decabill/logging.py). Tests compare the lines'
fields, never their text: the spacing of the JSON is the renderer's business."""

from __future__ import annotations

import json
from typing import Any


def json_lines(text: str) -> list[dict]:
    """Every line parsed; fails naming the first line that is not exactly one JSON object."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"line {number} is not one JSON object ({exc}): {line[:300]!r}") from None
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


def log_records(text: str) -> list[dict]:
    """The JSON lines of a process's output, which may hold other lines too (stderr merged in, a line cut off by
    a kill)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
    return records


def events(text: str, event: str, **fields: Any) -> list[dict]:
    """The log lines of `event` (with `fields`, when given) in a process's output."""
    return [record for record in log_records(text)
            if record.get("event") == event and all(record.get(k) == v for k, v in fields.items())]


def logged(text: str, event: str, **fields: Any) -> bool:
    """Whether a process's output has a line of `event` (with `fields`, when given)."""
    return bool(events(text, event, **fields))
