"""Timestamps on the wire (`decabill.shapes`): every date-time property is sent as UTC with a `Z`, microseconds
kept when there are any, whatever offset the value carries; None is null where the schema allows it and left out
where it does not."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from decabill.shapes import shape

_SCHEMA = {
    "type": "object",
    "required": ["createdAt"],
    "properties": {
        "createdAt": {"type": "string", "format": "date-time"},
        "cancelledAt": {"type": "string", "format": "date-time", "nullable": True},
        "issuedAt": {"type": "string", "format": "date-time"},
        "dueDate": {"type": "string", "format": "date"},
    },
}


@dataclass
class Row:
    created_at: dt.datetime
    cancelled_at: dt.datetime | None = None
    issued_at: dt.datetime | None = None
    due_date: dt.date | None = None


def test_a_utc_timestamp_is_sent_with_z_and_its_microseconds():
    row = Row(dt.datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=dt.timezone.utc),
              cancelled_at=dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc), due_date=dt.date(2026, 3, 15))
    assert shape(row, _SCHEMA) == {"createdAt": "2026-03-01T12:30:05.123456Z", "cancelledAt": "2026-03-02T00:00:00Z",
                                   "dueDate": "2026-03-15"}


def test_utc_timestamps_read_as_python_writes_them_at_every_precision_and_year():
    """The UTC fast path writes each timestamp exactly as `isoformat()` with `Z` for `+00:00` does."""
    values = [dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=dt.timezone.utc),
              dt.datetime(2026, 12, 6, 9, 15, 14, 405980, tzinfo=dt.timezone.utc),
              dt.datetime(2026, 12, 6, 9, 15, 14, 400000, tzinfo=dt.timezone.utc),
              dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)]
    for value in values:
        assert shape(Row(value), _SCHEMA)["createdAt"] == value.isoformat().replace("+00:00", "Z")


def test_a_timestamp_with_another_offset_is_sent_as_the_same_instant_in_utc():
    berlin = dt.timezone(dt.timedelta(hours=1))
    row = Row(dt.datetime(2026, 3, 1, 0, 15, 0, 500, tzinfo=berlin), issued_at=dt.datetime(2026, 3, 1, tzinfo=berlin))
    assert shape(row, _SCHEMA) == {"createdAt": "2026-02-28T23:15:00.000500Z", "cancelledAt": None,
                                   "issuedAt": "2026-02-28T23:00:00Z"}


def test_none_is_null_where_the_schema_allows_it_and_left_out_where_not():
    shaped = shape({"createdAt": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "cancelledAt": None,
                    "issuedAt": None}, _SCHEMA)
    assert shaped == {"createdAt": "2026-01-01T00:00:00Z", "cancelledAt": None}
