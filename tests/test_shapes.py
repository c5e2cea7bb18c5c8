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


# --- the shaper made per class (`_ClassShaper`) gives the generic shaper's results, byte for byte ------------


import collections  # noqa: E402
import enum  # noqa: E402
import operator  # noqa: E402
import uuid  # noqa: E402
from decimal import Decimal  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
from asyncpg.pgproto import pgproto  # noqa: E402

from decabill import shapes  # noqa: E402
from decabill.shapes import dump, dump_list  # noqa: E402
from decabill.web.encoding import OrjsonJsonifier  # noqa: E402

_SPECIAL = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "amount": {"type": "number", "nullable": True},
        "price": {"type": "string"},  # a Decimal as a string
        "count": {"type": "integer"},
        "status": {"type": "string"},
        "at": {"type": "string", "format": "date-time", "nullable": True},
        "day": {"type": "string", "format": "date"},
        "note": {"type": "string", "nullable": True},
        "paid": {"type": "boolean"},
        "parts": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "rate": {"type": "number"}}}},
        "owner": {"type": "object", "nullable": True, "properties": {"email": {"type": "string"}}},
        "from": {"type": "string", "format": "date"},
    },
}


def _generic(obj: Any, schema: dict) -> dict:
    """What the generic shaper (one block per property, by the value's type) gives for the object."""
    fields = [(field.name, field.attribute, field.omit_none, shapes._by_type(field.schema),
               shapes._converter(field.schema)) for field in shapes._fields(shapes._resolve(schema))]
    return shapes._generated_shaper(fields, shapes._dict_shaper(fields))(obj)


def _same_bytes(obj: Any, schema: dict) -> dict:
    shaped = shapes.shape(obj, schema)
    assert orjson.dumps(shaped) == orjson.dumps(_generic(obj, schema))  # the same keys, in the same order
    assert OrjsonJsonifier().dumps(shaped) == OrjsonJsonifier().dumps(_generic(obj, schema))
    return shaped


class Color(enum.Enum):
    RED = "red"


class Level(str, enum.Enum):
    HIGH = "high"


@dataclass
class Part:
    name: str
    rate: Decimal


@dataclass
class Owner:
    email: str


Record = collections.namedtuple("Record", "id amount price count status at day note paid")
Shorter = collections.namedtuple("Shorter", "id amount price count status at day")  # no note, no paid


@dataclass
class View:
    """Like the app's views: properties read along a path of the record, computed ones, plain attributes."""

    record: Any
    parts: list = None  # type: ignore[assignment]
    owner: Any = None

    id = property(operator.attrgetter("record.id"))
    amount = property(operator.attrgetter("record.amount"))
    price = property(operator.attrgetter("record.price"))
    count = property(operator.attrgetter("record.count"))
    status = property(operator.attrgetter("record.status"))
    at = property(operator.attrgetter("record.at"))
    day = property(operator.attrgetter("record.day"))
    note = property(operator.attrgetter("record.note"))

    @property
    def paid(self) -> bool:
        return self.record.paid

    def __getattr__(self, name: str) -> Any:  # the contract's `from` is a Python keyword
        if name == "from":
            return self.record.day
        raise AttributeError(name)


UTC = dt.timezone.utc
BERLIN = dt.timezone(dt.timedelta(hours=1))


def _record(**changes: Any) -> Record:
    values = {"id": uuid.UUID(int=7), "amount": Decimal("12.50"), "price": Decimal("30.00"), "count": 3,
              "status": "open", "at": dt.datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC), "day": dt.date(2026, 3, 15),
              "note": "x", "paid": False}
    return Record(**{**values, **changes})


def test_values_of_other_types_after_the_first_are_converted_by_the_generic_rules():
    """The shaper of a class is specialised to the types it saw first; any other value still converts as the
    generic shaper converts it (a Decimal, then None, then an int, a float, a bool...)."""
    changes = [{}, {}, {"amount": None}, {"amount": 5}, {"amount": 2.5}, {"amount": True}, {"amount": Decimal("-0.00")},
               {"amount": Decimal("1E+2")}, {"price": 7}, {"price": None}, {"price": "7.10"}, {"count": None},
               {"count": Decimal("4")}, {"status": Color.RED}, {"status": Level.HIGH}, {"status": None},
               {"at": None}, {"at": dt.datetime(2026, 3, 1)}, {"at": dt.datetime(2026, 3, 1, 0, 30, tzinfo=BERLIN)},
               {"at": dt.date(2026, 3, 1)}, {"day": dt.datetime(2026, 3, 1, 1, tzinfo=UTC)}, {"day": None},
               {"id": pgproto.UUID("12345678-1234-5678-1234-567812345678")}, {"id": "not-a-uuid"}, {"id": None},
               {"note": None}, {"note": 12}, {"paid": None}, {"paid": 1}, {}]
    for index, change in enumerate(changes * 2):  # the second round: with what the shaper learned in the first
        _same_bytes(View(_record(**change)), _SPECIAL)
        _same_bytes(_record(**change), _SPECIAL)  # the record itself: plain attributes
        if index == 1:  # specialised by now: to the first values' types
            made = shapes._shaper(shapes._resolve(_SPECIAL)).__globals__["known"](View)
            assert made.__globals__["type_1"] is Decimal and made.__globals__["type_0"] is uuid.UUID


def test_special_cases_shape_as_the_contract_says():
    view = View(_record(amount=None, price=Decimal("30.00"), status=Color.RED, note=None,
                        at=dt.datetime(2026, 3, 1, 0, 30, tzinfo=BERLIN), id=pgproto.UUID(str(uuid.UUID(int=9)))),
                parts=[Part("a", Decimal("0.19")), None], owner=Owner("o@example.com"))
    for _ in range(3):
        assert list(_same_bytes(view, _SPECIAL).items()) == [
            ("id", str(uuid.UUID(int=9))), ("amount", None), ("price", "30.00"), ("count", 3), ("status", "red"),
            ("at", "2026-02-28T23:30:00Z"), ("day", "2026-03-15"), ("note", None), ("paid", False),
            ("parts", [{"name": "a", "rate": 0.19}, None]), ("owner", {"email": "o@example.com"}),
            ("from", "2026-03-15")]
    # None: null where nullable, left out where not (required or not)
    bare = View(_record(id=None, price=None, count=None, day=None, paid=None, at=None))
    for _ in range(3):
        assert list(_same_bytes(bare, _SPECIAL)) == ["id", "amount", "status", "at", "note", "owner"]


def test_a_property_that_raises_attribute_error_is_left_out_as_by_the_generic_shaper():
    """A view over a record without some columns: those properties are left out (the generic shaper's reading:
    the attribute, else its camelCase name, else nothing), for such records, before and after full ones."""
    full, short = View(_record()), View(Shorter(uuid.UUID(int=1), Decimal(1), Decimal(2), 1, "open", None, None))
    for view in [full, short, full, short, short, full] * 2:
        shaped = _same_bytes(view, _SPECIAL)
        assert ("note" in shaped) is (view is full) and ("paid" in shaped) is (view is full)


def test_dicts_are_shaped_by_their_camel_case_then_snake_case_keys():
    class Mapping(dict):
        pass

    schema = {"type": "object", "properties": {"dueDate": {"type": "string", "format": "date"},
                                               "totalGross": {"type": "string"}, "gone": {"type": "string"}}}
    for kind in (dict, Mapping, dict):
        given = kind(dueDate=dt.date(2026, 1, 2), total_gross=Decimal("1.10"))
        assert list(_same_bytes(given, schema).items()) == [("dueDate", "2026-01-02"), ("totalGross", "1.10")]


def test_a_page_of_admin_invoices_is_shaped_as_by_the_generic_shaper():
    """The app's views over the rows `_DriverStatement` makes (bench/shapes.py's pages), every list shape."""
    from bench import shapes as pages

    schema_of = {"AdminInvoiceListItem": shapes._schemas()["AdminInvoiceListItem"],
                 "InvoiceResponse": shapes._schemas()["InvoiceResponse"],
                 "SubscriptionResponse": shapes._schemas()["SubscriptionResponse"]}
    for make, name in pages.CASES.values():
        items = make()
        for _ in range(3):
            listed = dump_list(items, name)
            assert orjson.dumps(listed) == orjson.dumps([_generic(item, schema_of[name]) for item in items])
            assert [dump(item, name) for item in items] == listed


def test_timestamps_written_together_give_what_each_gives_alone():
    """From `_TIMESTAMPS_BATCHED` timestamp properties on, UTC values (and None) are written by one call; a
    naive value, another offset or a date among them takes each property's own conversion."""
    names = ["startsAt", "endsAt", "billedAt", "cancelledAt", "createdAt"]
    schema = {"type": "object", "properties": {name: {"type": "string", "format": "date-time",
                                                      "nullable": name == "cancelledAt"} for name in names}}
    Times = collections.namedtuple("Times", "starts_at ends_at billed_at cancelled_at created_at")
    utc = [dt.datetime(2026, 1, day, 3, 4, 5, day * 1000, tzinfo=UTC) for day in range(1, 6)]
    others = [None, dt.datetime(2026, 1, 1, 3), dt.datetime(2026, 1, 1, 0, 30, tzinfo=BERLIN), dt.date(2026, 1, 2),
              dt.datetime(1, 1, 1, tzinfo=UTC), "2026-01-01"]
    rows = [Times(*utc), Times(*utc)]
    for position in range(5):
        rows += [Times(*(utc[:position] + [other] + utc[position + 1:])) for other in others]
    for row in rows * 2:
        shaped = _same_bytes(row, schema)
        if row in (rows[0], rows[1]):
            assert list(shaped.values()) == [value.isoformat().replace("+00:00", "Z") for value in utc]
    made = shapes._shaper(shapes._resolve(schema)).__globals__["known"](Times)
    assert "loads" in made.__code__.co_names  # written together
