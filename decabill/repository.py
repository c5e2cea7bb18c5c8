"""The base of every domain's `repository.py`: the one place queries start and the one place the tenant
filter is added.

A repository is made for one unit of work: a service opens (or joins) the transaction and hands its
session over, `SubscriptionRepository(session)`. Nothing here opens a transaction or finds a session on
its own, so a repository call outside a service's transaction is impossible to write by accident.

    class ServicePlanRepository(Repository[ServicePlan]):
        model = ServicePlan

        async def active(self) -> list[ServicePlan]:
            return await self.all(self.statement().where(ServicePlan.is_active.is_(True)))

* `statement()` — `SELECT model WHERE tenant_id = <request tenant>`; with columns (`statement(Invoice.id)`,
  `statement(Invoice, Subscription.number)`) the same filter on this repository's table. Every query of a
  repository starts here, or at `update()` / `delete()`, which are scoped the same way; joined tables are
  reached through this table's rows, so they need no filter of their own.
* `get(id, for_update=…)`, `get_by(...)`, `page(statement, limit, offset)`, `count(...)`, `sum(column, ...)`,
  `exists(...)` — the reads every domain needs. `for_update` locks rows on PostgreSQL (SQLite's
  BEGIN IMMEDIATE already serialises writers).
* `add(row)` / `create(row)` stamp the request's tenant on a new row; `create_unless_taken(row)` inserts in a
  savepoint and answers False where a unique key refuses it; `insert_if_missing(values, keys)` is the
  race-free `INSERT ... ON CONFLICT DO NOTHING`.
* `scoped(*columns)` — the same start with the tenant as the bound parameter `TENANT_PARAM`, for statements
  built ONCE per process (`@prepared`) and run with `run(statement, **params)`, which fills the tenant from the
  request's: the hot reads neither build their SQL nor its cache key per request. In a `db.read()` on
  PostgreSQL, `run()` executes such a statement on asyncpg's connection itself (`_DriverStatement`).
* `in_any_tenant(*columns)` — the only unscoped start on a tenant's table, named so a reader sees it (a token
  names its user in whatever tenant it was issued for; the operator's metrics count across tenants).
* `InstallationRepository` — the same base for the installation's own tables, which belong to no tenant.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import orjson
import structlog
from sqlalchemy import (
    BigInteger,
    Delete,
    Numeric,
    Text,
    Update,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Row
from sqlalchemy.exc import CompileError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Bundle
from sqlalchemy.sql import ColumnElement, Executable, Select, operators, visitors
from sqlalchemy.sql.elements import BindParameter, UnaryExpression

from decabill import db
from decabill.errors import StillReferenced
from decabill.memo import PerObject
from decabill.tenancy import current_tenant

M = TypeVar("M")
log = structlog.get_logger("decabill.repository")

MAX_ROWS = 2**62  # beyond any real table; keeps huge client offsets inside SQLite's INTEGER range

#: the bound parameter of the tenant in statements built once (`Repository.scoped`), filled by `Repository.run`
TENANT_PARAM = "scope_tenant_id"
#: the bound parameters of `paged()` statements, filled by `paging(limit, offset)`
PAGE_LIMIT, PAGE_OFFSET = "page_limit", "page_offset"


def _clamped(limit: int | None, offset: int | None) -> tuple[int | None, int]:
    """The contract's limit/offset as SQL takes them: limit 0 (or none) means no limit (None). Values outside
    what a database accepts (negative, beyond 64 bits) are clamped instead of reaching SQL as a 500."""
    return (min(limit, MAX_ROWS) if limit and limit > 0 else None), min(max(offset or 0, 0), MAX_ROWS)


def page(statement: Select[Any], limit: int | None, offset: int | None) -> Select[Any]:
    """Apply limit/offset as the contract defines them (`_clamped`)."""
    limit, offset = _clamped(limit, offset)
    statement = statement.offset(offset)
    return statement if limit is None else statement.limit(limit)


def paged(statement: Select[Any]) -> Select[Any]:
    """`page()` for a statement built once: limit and offset are bound parameters (64-bit, as the clamped values
    may be); run it with `**paging(limit, offset)`."""
    return statement.limit(bindparam(PAGE_LIMIT, type_=BigInteger)).offset(bindparam(PAGE_OFFSET, type_=BigInteger))


_FIRST_PAGES: PerObject[Select[Any], dict[int, Select[Any]]] = PerObject()
FIRST_PAGE_LIMITS = 100  # distinct limits per statement written into its SQL (the contract's largest page is 100)


def planned_first_page(statement: Select[Any]) -> Select[Any]:
    """Mark a `paged()` statement built once whose first page (offset 0) should be run with its limit written into
    the SQL. PostgreSQL plans a statement whose LIMIT is a parameter anew at every run when the plan for an unknown
    limit (which it takes as 10 % of the rows) looks costlier than the plan for the actual one — the admin list's
    newest-first page of 100,000 invoices: 0.2 ms of planning against 0.08 ms of execution, each time. With the
    limit in the SQL and no OFFSET its plan for unknown values is the same plan, which PostgreSQL then keeps per
    connection. Later pages keep the parameters (offsets are many; a statement per offset would not be reused)."""
    _FIRST_PAGES.put(statement, {})
    return statement


def first_page_of(statement: Select[Any], params: dict[str, Any]) -> Select[Any]:
    """The statement to run for `params`: `statement` itself, or its first-page variant (`planned_first_page`)."""
    variants = _FIRST_PAGES.get(statement)
    if variants is None or params.get(PAGE_OFFSET) != 0:
        return statement
    limit = params[PAGE_LIMIT]
    variant = variants.get(limit)
    if variant is None:
        if limit > FIRST_PAGE_LIMITS:
            return statement
        variant = variants[limit] = statement.limit(literal_column(str(int(limit)))).offset(None)
    return variant


def paging(limit: int | None, offset: int | None) -> dict[str, int]:
    """The parameters of a `paged()` statement; no limit is `MAX_ROWS` (SQLite has no `LIMIT NULL`)."""
    limit, offset = _clamped(limit, offset)
    return {PAGE_LIMIT: MAX_ROWS if limit is None else limit, PAGE_OFFSET: offset}


def together(*statements: Select[Any]) -> Select[Any]:
    """One statement of several one-value statements (`count_query`, `sum_query`, `value_query`...):
    `SELECT (…), (…), …` — their values in ONE round trip."""
    return select(*(statement.scalar_subquery() for statement in statements))


class prepared:  # noqa: N801 - used as a decorator, like `property`
    """Decorates a repository's builder of a statement that takes every value as a bound parameter (the tenant
    too: it starts at `scoped()`): the statement is built once per process and repository class, at its first
    use, and then reused — a request neither builds it nor computes its cache key (SQLAlchemy memoises that on
    the statement object). Read it as an attribute (`self._open_of_user`), run it with `run()`."""

    def __init__(self, build: Callable[[Any], Executable]) -> None:
        self.build = build
        self.built: dict[type, Executable] = {}
        self.__doc__ = build.__doc__

    def __get__(self, instance: Any, owner: type) -> Any:
        statement = self.built.get(owner)
        if statement is None:
            statement = self.built[owner] = self.build(owner)
        return statement


_GENERIC_PLANS: PerObject[Executable, bool] = PerObject()


def generic_plan(statement: Select[Any]) -> Select[Any]:
    """Mark a statement built once (`scoped()`, run with `run()`) to be planned once per connection on PostgreSQL:
    its driver read runs it with `plan_cache_mode = force_generic_plan` (`db.use_plans`: the connection keeps the
    setting for the next marked read; a statement not marked, driver read or Core, resets it first). For statements
    whose every run would otherwise be planned anew (PostgreSQL keeps choosing a custom plan when the plan for
    unknown values looks costlier, as for the admin search's `LIKE` patterns: 0.55–0.65 ms of planning against
    0.2 ms of execution each time, on the database's CPU), where the plan for unknown values serves every value
    about as well (measured in docs/performance.md). Core runs (SQLite, inside a transaction) are unchanged."""
    _GENERIC_PLANS.put(statement, True)
    return statement


# --- lists written as JSON by PostgreSQL ----------------------------------------------------------------------
# The same text the shapers (decabill/shapes.py) give for a row: the property names, null or left out when absent,
# UTC timestamps as orjson writes them (`…:SS.ffffffZ`, no fraction when it is zero), numbers as their exact decimal
# value (`trim_scale`: 7.74 for a stored 7.7400, what `float()` gives), text quoted and escaped by `to_json`.

_TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


class JsonField(Protocol):
    """A property as `json_object` writes it (`shapes.JsonField`, from the contract's schema)."""

    name: str  # in the JSON
    attribute: str  # the key of its value in `values`
    kind: str | None  # the schema's type
    format: str | None
    omit_none: bool  # left out when NULL (else null)


def _sql_text(text: str) -> Any:
    """`text` as an SQL string constant written into the statement (not a parameter)."""
    return literal_column("'" + text.replace("'", "''") + "'", type_=Text)


def _joined(*parts: Any) -> Any:
    """`a || b || …`: NULL when any part is NULL."""
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.op("||", return_type=Text)(part)
    return joined


def _is_numeric(value: Any) -> bool:
    # a TypeDecorator (ExactDecimal) names its implementation as a class
    kind = getattr(value.type, "impl", value.type)
    return isinstance(kind, Numeric) or (isinstance(kind, type) and issubclass(kind, Numeric))


def _json_value(field: JsonField, value: Any) -> Any:
    """The JSON text of a value of the property (NULL for NULL)."""
    if field.kind == "string" and field.format == "date-time":
        written = func.to_char(func.timezone(_sql_text("UTC"), value), _sql_text(_TIMESTAMP_FORMAT), type_=Text)
        without_zero_fraction = func.replace(written, _sql_text(".000000Z"), _sql_text("Z"), type_=Text)
        return _joined(_sql_text('"'), without_zero_fraction, _sql_text('"'))
    if field.kind == "string":  # a uuid, a date, an enum's value or text; a decimal as its text
        return cast(func.to_json(cast(value, Text) if _is_numeric(value) else value), Text)
    if field.kind == "number":
        return cast(func.trim_scale(cast(value, Numeric)), Text)
    if field.kind in ("integer", "boolean"):
        return cast(value, Text)
    raise ValueError(f"{field.name}: no JSON written for a property of type {field.kind}")


def json_object(shape: Sequence[JsonField], values: Any) -> Any:
    """The SQL of the JSON text of one object of `shape` (`shapes.json_fields`): each property's value from
    `values[attribute]` (a mapping or a row's columns: every property must be there, more may be), in the shape's
    order; a property that may be left out is left out when its value is NULL (`concat_ws` skips a NULL piece)."""
    pieces = []
    for field in shape:
        if field.attribute not in values:
            raise ValueError(f"{field.name}: no SQL value given for {field.attribute!r}")
        written = _json_value(field, values[field.attribute])
        if not field.omit_none:
            written = func.coalesce(written, _sql_text("null"), type_=Text)
        pieces.append(_joined(_sql_text(orjson.dumps(field.name).decode() + ":"), written))
    return _joined(_sql_text("{"), func.concat_ws(_sql_text(","), *pieces, type_=Text), _sql_text("}"))


def row_columns(row: Any) -> Any:
    """The values of a listed item that are its row's own columns (`json_array_of`'s `values`)."""
    return row


def _order_of(statement: Select[Any], rows: Any) -> list[ColumnElement[Any]]:
    """The statement's ORDER BY over the columns of `rows`, its subquery: the order of the list it gives."""
    order = []
    for clause in statement._order_by_clauses:  # noqa: SLF001 - SQLAlchemy keeps no public accessor
        descending = isinstance(clause, UnaryExpression) and clause.modifier is operators.desc_op
        column = rows.corresponding_column(clause.element if isinstance(clause, UnaryExpression) else clause)
        if column is None:
            raise ValueError(f"ORDER BY {clause}: not a column the statement selects")
        order.append(column.desc() if descending else column)
    if not order:
        raise ValueError("a list written as JSON keeps its statement's order: the statement has none")
    return order


_JSON_ARRAYS: PerObject[Executable, dict[tuple[Any, ...], Select[Any]]] = PerObject()


def json_array_of(statement: Select[Any], shape: Sequence[JsonField], values: Callable[[Any], Any], *,
                  keep: Sequence[str] = (), present: str = "id") -> Select[Any]:
    """ONE row for a statement built once (PostgreSQL): `items`, the JSON text of the array of its rows as objects
    of `shape` (`json_object` of `values(row)`: the SQL values of an item's properties over the statement's row
    columns), in the statement's own order, over the rows whose `present` column is not NULL (`[]` when none);
    `listed_rows`, how many rows the statement gave (those of NULLs too); and each column of `keep` as its largest
    value over the rows (a total every row carries), NULL when there are none. Built once per statement, shape and
    `values`; run with the statement's parameters (`run_json()`), planned like it (`generic_plan`)."""
    def made(_: Select[Any]) -> dict[tuple[Any, ...], Select[Any]]:
        return {}

    built = _JSON_ARRAYS.of(statement, made)
    wrapped = built.get((shape, values))
    if wrapped is None:
        rows = statement.subquery("listed")
        item = json_object(shape, values(rows.c))
        joined = func.string_agg(item, aggregate_order_by(literal_column("','"), *_order_of(statement, rows))).filter(
            rows.c[present].is_not(None))
        items = func.coalesce(_joined(_sql_text("["), joined, _sql_text("]")), _sql_text("[]"))
        wrapped = built[(shape, values)] = select(*(func.max(rows.c[name]).label(name) for name in keep),
                                                  func.count().label("listed_rows"), items.label("items"))
        if _GENERIC_PLANS.get(statement):
            generic_plan(wrapped)
    return wrapped


# The constants written as SQL literals: text, integers and booleans (and IN lists of them), whose literals
# PostgreSQL reads back as the same values; others (bytes, timestamps, decimals...) stay parameters.
_WRITTEN_CONSTANTS = (str, int, bool)


def _written_constant(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return bool(value) and all(_written_constant(item) for item in value)
    return type(value) in _WRITTEN_CONSTANTS and not (type(value) is str and "\x00" in value)


def _with_constants_written(statement: Select[Any]) -> Select[Any]:
    """A copy of `statement` whose constants (bound values it carries, not the caller's parameters) of the kinds
    `_written_constant` allows are rendered into its SQL when it is compiled (`literal_execute`)."""
    def written(element: Any) -> Any:
        if isinstance(element, BindParameter) and not element.required and not element.literal_execute \
                and element.callable is None and _written_constant(element.value):
            return element.render_literal_execute()
        return None

    return visitors.replacement_traverse(statement, {}, written)


class _DriverStatement:
    """A statement built once, as asyncpg runs it: the SQL and the order of its parameters as SQLAlchemy's
    asyncpg dialect compiles them (its text, integer and boolean constants, `IN` lists included, written into the
    SQL: asyncpg encodes every parameter at every run), with the dialect's conversions of the parameters
    and of each result column (`UTCDateTime`, `ExactDecimal`...), and the rows as named tuples of the columns'
    keys — what `Result.all()` gives, read from `Connection.fetch` (asyncpg's own prepared-statement cache).
    Made once per process, statement and dialect; the result conversions at the first run, from the prepared
    statement's column types.

    Per run only what differs between runs is done: the positional arguments and the rows are made by two
    functions generated once per statement (`_arguments`, `_rows`) — the constants converted once, a parameter
    without a conversion copied as it is, each row one tuple of its values, the conversions of its columns
    written inline — no loop over column descriptions and no Python frame per row or per unconverted value."""

    _known: ClassVar[PerObject[Executable, tuple[Any, _DriverStatement | None]]] = PerObject()  # (dialect, made)

    def __init__(self, statement: Select[Any], dialect: Any) -> None:
        try:  # the statement's constants written into its SQL: asyncpg would encode each at every run
            required, expanded = self._expanded(_with_constants_written(statement), dialect)
        except CompileError:  # a written constant whose type has no literal form: all stay parameters
            required, expanded = self._expanded(statement, dialect)
        self.sql: str = expanded.statement
        # per positional parameter: the caller's value of that name (converted when the dialect converts it), or
        # the statement's constant, converted now
        namespace: dict[str, Any] = {}
        values = []
        for index, name in enumerate(expanded.positiontup or ()):
            convert = expanded.processors.get(name)
            if name in required:
                value = f"params[{name!r}]"
                if convert is not None:
                    namespace[f"convert_{index}"] = convert
                    value = f"convert_{index}({value})"
            else:
                constant = expanded.parameters[name]
                namespace[f"constant_{index}"] = convert(constant) if convert is not None else constant
                value = f"constant_{index}"
            values.append(value)
        exec(f"def arguments(params):\n    return ({''.join(v + ', ' for v in values)})", namespace)  # noqa: S102
        self._arguments: Callable[[dict[str, Any]], tuple[Any, ...]] = namespace["arguments"]
        self.columns = list(statement.selected_columns)
        self.row = collections.namedtuple("Row", [column.key or "_" for column in self.columns],  # type: ignore[misc]
                                          rename=True)
        self.dialect = dialect
        self.generic_plan = bool(_GENERIC_PLANS.get(statement))
        self._rows: Callable[[list[Any]], list[Any]] | None = None

    @staticmethod
    def _expanded(statement: Select[Any], dialect: Any) -> tuple[set[str], Any]:
        """The names of the caller's parameters, and the statement compiled for them (IN lists expanded)."""
        compiled = statement.compile(dialect=dialect)
        required = {name for name, bind in compiled.binds.items() if bind.required}
        return required, compiled.construct_expanded_state({name: None for name in required})

    @classmethod
    def of(cls, statement: Executable, dialect: Any) -> _DriverStatement | None:
        """The driver statement of `statement` (None: not a SELECT, or not asyncpg's: run it as Core)."""
        known = cls._known.get(statement)
        if known is not None and known[0] is dialect:
            return known[1]
        made = cls(statement, dialect) if isinstance(statement, Select) and dialect.driver == "asyncpg" else None
        cls._known.put(statement, (dialect, made))
        return made

    def _row_maker(self, types: Sequence[Any]) -> Callable[[list[Any]], list[Any]]:
        """The function that makes the rows of a run from asyncpg's records: with `types` (the prepared
        statement's column types) each column's result conversion, by the dialect, as SQLAlchemy applies it."""
        namespace: dict[str, Any] = {"new": tuple.__new__, "Row": self.row}
        values = []
        for index, (column, attribute) in enumerate(zip(self.columns, types, strict=True)):
            convert = column.type.dialect_impl(self.dialect).result_processor(self.dialect, attribute.type.oid)
            if convert is None:
                values.append(f"record[{index}]")
            else:
                namespace[f"convert_{index}"] = convert
                values.append(f"convert_{index}(record[{index}])")
        if len(values) == sum(value.startswith("record[") for value in values):  # nothing to convert
            source = "def rows(records):\n    return [new(Row, record) for record in records]"
        else:
            source = f"def rows(records):\n    return [new(Row, ({''.join(v + ', ' for v in values)})) for record in records]"
        exec(source, namespace)  # noqa: S102 - source made here from column indexes only
        return namespace["rows"]

    async def fetch(self, driver: Any, params: dict[str, Any]) -> list[Any]:
        arguments = self._arguments(params)
        if self._rows is None:  # the first run: the columns' conversions need their database types
            prepared_statement = await driver.prepare(self.sql)
            self._rows = self._row_maker(prepared_statement.get_attributes())
        await db.use_plans(driver, generic=self.generic_plan)
        return self._rows(await driver.fetch(self.sql, *arguments))


_RECORDS: dict[type, Bundle] = {}


class Repository(Generic[M]):
    """Queries on one tenant-owned table (`model`), in the session of the caller's transaction."""

    model: ClassVar[type[Any]]
    #: False only for `InstallationRepository`: tables of the installation that belong to no tenant
    tenant_scoped: ClassVar[bool] = True

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- where queries start ---------------------------------------------------------------------------

    @classmethod
    def _tenant_condition(cls) -> ColumnElement[bool]:
        return cls.model.tenant_id == current_tenant() if cls.tenant_scoped else true()

    @property
    def writes_json(self) -> bool:
        """Whether lists can be read as JSON the database writes (`json_array_of`): on PostgreSQL."""
        return self.session.bind.dialect.name == "postgresql"

    def statement(self, *columns: Any) -> Select[Any]:
        """`SELECT model` (or the given columns) of the request's tenant."""
        return select(*(columns or (self.model,))).where(self._tenant_condition())

    @classmethod
    def scoped(cls, *columns: Any) -> Select[Any]:
        """`SELECT` of the given columns (or the table's, `columns()`) of the tenant bound at run time: the start
        of a statement built once (`@prepared`); `run()` binds `TENANT_PARAM` to the request's tenant."""
        statement = select(*(columns or cls.columns()))
        return statement.where(cls.model.tenant_id == bindparam(TENANT_PARAM)) if cls.tenant_scoped else statement

    @classmethod
    def columns(cls) -> Any:
        """The table's columns: selected by a statement that `run()` executes, each row is a plain, read-only
        record of them (`record.status`, like the model)."""
        return cls.model.__table__.columns

    @classmethod
    def record(cls) -> Bundle:
        """The model's columns read as one plain, read-only record per row (`record.status`, like the model):
        for the read-only lists of the hot paths, where building, tracking and expiring ORM objects costs more
        than the query itself. Use as `statement(self.record(), ...)`; `all()` gives the records."""
        bundle = _RECORDS.get(cls.model)
        if bundle is None:
            bundle = _RECORDS[cls.model] = Bundle(cls.model.__tablename__, *cls.model.__table__.columns)
        return bundle

    def in_any_tenant(self, *columns: Any) -> Select[Any]:
        """`SELECT model` (or the given columns) across tenants: only for what is itself proof of its tenant (a
        token's subject) and for the operator's view of the whole installation."""
        return select(*(columns or (self.model,)))

    def update(self, *conditions: Any, **values: Any) -> Update:
        """`UPDATE model SET values WHERE <tenant> AND conditions` (run it with `execute`)."""
        return update(self.model).where(self._tenant_condition(), *conditions).values(**values)

    def delete(self, *conditions: Any) -> Delete:
        return delete(self.model).where(self._tenant_condition(), *conditions)

    def for_update(self, statement: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
        """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
        if self.session.bind.dialect.name == "postgresql":
            return statement.with_for_update(skip_locked=skip_locked)
        return statement

    # --- reads ------------------------------------------------------------------------------------------

    async def get(self, id: uuid.UUID, *, for_update: bool = False, skip_locked: bool = False,
                  reload: bool = False) -> M | None:
        return await self.get_by(self.model.id == id, for_update=for_update, skip_locked=skip_locked, reload=reload)

    async def get_by(self, *conditions: Any, for_update: bool = False, skip_locked: bool = False,
                     reload: bool = False) -> M | None:
        """The one row matching `conditions`, or None. `reload`: overwrite what the session holds of it with the
        database's values (a row read before, now locked)."""
        statement = self.statement().where(*conditions)
        if for_update:
            statement = self.for_update(statement, skip_locked=skip_locked)
        if reload:
            statement = statement.execution_options(populate_existing=True)
        return await self.one_or_none(statement)

    async def one_or_none(self, statement: Select[Any]) -> Any:
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def first(self, statement: Select[Any]) -> Any:
        return (await self.session.execute(statement.limit(1))).scalars().first()

    async def all(self, statement: Select[Any]) -> list[Any]:
        """The first column of every row (the model, or an id)."""
        return list((await self.session.execute(statement)).scalars())

    async def rows(self, statement: Select[Any]) -> Sequence[Row[Any]]:
        """Whole rows, for statements of several columns."""
        return (await self.session.execute(statement)).all()

    async def scalar(self, statement: Select[Any]) -> Any:
        """The one value of the statement (it may start at `statement()` or `scoped()`)."""
        return (await self.session.execute(statement, {TENANT_PARAM: current_tenant()})).scalar_one()

    async def run(self, statement: Executable, **params: Any) -> Sequence[Any]:
        """The rows of a statement built once (`@prepared`, starting at `scoped()`), run with `params` and the
        request's tenant on the unit of work's connection: plain, read-only records (`row.status`, `tuple(row)`),
        no ORM objects, no ORM compile step. For reads: the session's pending changes are not flushed first.

        In a `db.read()` on PostgreSQL (asyncpg) the statement runs on the driver's connection itself
        (`_DriverStatement`): the same SQL, parameters and column conversions as SQLAlchemy's, without its
        per-execution machinery; elsewhere (SQLite, inside a transaction, tracing on) as Core."""
        params[TENANT_PARAM] = current_tenant()
        statement = first_page_of(statement, params)
        session = self.session
        if db.is_driver_read(session):  # a `db.read()` unit on asyncpg: autocommit, no ORM session needed
            driver_statement = _DriverStatement.of(statement, session.dialect)
            if driver_statement is not None:
                driver = await session.driver()
                try:
                    return await driver_statement.fetch(driver, params)
                except Exception:  # noqa: BLE001 - SQLAlchemy runs it again (on the same connection) and raises
                    log.info("db.driver_read_failed", exc_info=True)  # (and invalidates) as ever
        return (await (await session.connection()).execute(statement, params)).all()

    async def run_json(self, statement: Executable, shape: Sequence[JsonField], values: Callable[[Any], Any], *,
                       keep: Sequence[str] = (), present: str = "id", **params: Any) -> Any:
        """`run()` of a statement built once with its rows as JSON the database writes (`json_array_of`, PostgreSQL:
        `writes_json`): the one row of `items` (the JSON text), `listed_rows` and the `keep` columns."""
        written = json_array_of(first_page_of(statement, params), shape, values, keep=keep, present=present)
        (row,) = await self.run(written, **params)
        return row

    async def page(self, statement: Select[Any], limit: int | None, offset: int | None) -> list[Any]:
        return await self.all(page(statement, limit, offset))

    # One-value statements, scoped by the bound tenant so that they can be built once; values in `conditions` may
    # be bound parameters. `count()` / `sum()` run them; `together()` joins several into one statement.

    @classmethod
    def value_query(cls, id: Any, column: Any) -> Select[Any]:
        """`SELECT column` of the row `id`."""
        return cls.scoped(column).where(cls.model.id == id)

    @classmethod
    def count_query(cls, *conditions: Any) -> Select[Any]:
        return cls.scoped(func.count()).select_from(cls.model).where(*conditions)

    @classmethod
    def sum_query(cls, column: Any, *conditions: Any) -> Select[Any]:
        return cls.scoped(cls.sum_of(column)).where(*conditions)

    async def exists(self, *conditions: Any) -> bool:
        return await self.first(self.statement(self.model.id).where(*conditions)) is not None

    async def count(self, *conditions: Any) -> int:
        return int(await self.scalar(self.count_query(*conditions)))

    @staticmethod
    def sum_of(column: Any) -> Any:
        """`COALESCE(SUM(column), 0)` typed as the column, so money sums come back as exact Decimals."""
        return type_coerce(func.coalesce(func.sum(column), 0), column.type)

    @staticmethod
    def min_of(column: Any) -> Any:
        return func.min(column)

    async def sum(self, column: Any, *conditions: Any) -> Decimal:
        return await self.scalar(self.sum_query(column, *conditions))

    # --- writes -----------------------------------------------------------------------------------------

    def add(self, row: M) -> M:
        """Add a new row of the request's tenant."""
        if self.tenant_scoped and getattr(row, "tenant_id", None) is None:
            row.tenant_id = current_tenant()  # type: ignore[attr-defined]
        self.session.add(row)
        return row

    async def create(self, row: M) -> M:
        """`add` and flush (ids and defaults are filled, constraints checked now)."""
        self.add(row)
        await self.session.flush()
        return row

    async def remove(self, row: M) -> None:
        """Delete a row (its ON DELETE rules apply) and flush."""
        await self.session.delete(row)
        await self.session.flush()

    async def remove_unreferenced(self, row: M, what: str, hint: str) -> None:
        """Delete the row, or raise `StillReferenced` (409) naming what still points at it. Checked before
        deleting; a referencing row added concurrently is refused by the foreign key at flush, which becomes
        the same 409 instead of a 500."""
        row_id = row.id  # type: ignore[attr-defined]  # read now: a failed flush leaves the row unloadable
        found = await db.references(row)
        if found:
            raise StillReferenced(what, row_id, found, hint)
        try:
            await self.remove(row)
        except IntegrityError:
            raise StillReferenced(what, row_id, [("other records", 1)], hint) from None

    async def create_unless_taken(self, row: M) -> bool:
        """Insert the row in a savepoint; False (and nothing inserted) when a unique key refuses it, so the
        caller's transaction goes on (a unique key as the last line of defence against doing a thing twice)."""
        try:
            async with self.session.begin_nested():
                await self.create(row)
        except IntegrityError:
            return False
        return True

    async def execute(self, statement: Any) -> Any:
        """Run an `update()` / `delete()` (or another statement built from this repository's starts)."""
        return await self.session.execute(statement)

    async def insert_if_missing(self, values: dict[str, Any], keys: list[str]) -> uuid.UUID | None:
        """`INSERT ... ON CONFLICT (keys) DO NOTHING` of a row of the request's tenant, on PostgreSQL and SQLite;
        the new row's primary key, or None when a row with those keys exists.

        On PostgreSQL a conflicting row that another open transaction has just inserted makes this statement
        wait for that transaction, so afterwards the row is visible (committed) or absent (rolled back)."""
        if self.session.bind.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        if self.tenant_scoped:
            values = {"tenant_id": current_tenant(), **values}
        table = self.model.__table__
        key = next(iter(table.primary_key.columns))
        statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=keys).returning(key)
        return (await self.session.execute(statement)).scalar_one_or_none()


    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """One multi-row INSERT (executemany) of new rows of the request's tenant, bypassing the ORM's unit of
        work (the billing day's batch: thousands of rows nobody reads back in this transaction)."""
        if not rows:
            return
        if self.tenant_scoped:
            tenant = current_tenant()
            rows = [{"tenant_id": tenant, **row} for row in rows]
        await self.session.execute(insert(self.model.__table__), rows)


class BillableRepository(Repository[M]):
    """Rows an invoice bills exactly once (open positions, usage records): `invoice_id` is set by the invoice
    that bills them, guarded by `invoice_id IS NULL`."""

    async def mark_billed(self, ids: Sequence[uuid.UUID], invoice_id: uuid.UUID) -> int:
        """Point the given, still unbilled rows at the invoice; how many rows changed (fewer than given: some
        were billed meanwhile)."""
        if not ids:
            return 0
        statement = self.update(self.model.id.in_(ids), self.model.invoice_id.is_(None), invoice_id=invoice_id)
        result = await self.execute(statement.execution_options(synchronize_session=False))
        return result.rowcount or 0

    async def mark_billed_many(self, billed: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """`mark_billed` of many rows at once — (row id, invoice id) each — as one executemany UPDATE; the
        caller holds the rows locked (claimed `FOR UPDATE`), so none can have been billed meanwhile."""
        if not billed:
            return
        table = self.model.__table__
        statement = (table.update()
                     .where(table.c.id == bindparam("row_id"), table.c.invoice_id.is_(None))
                     .values(invoice_id=bindparam("billed_by")))
        await self.session.execute(statement, [{"row_id": row, "billed_by": invoice} for row, invoice in billed])


class InstallationRepository(Repository[M]):
    """Queries on a table of the installation itself, which belongs to no tenant (the job ledger): the operator's
    view across tenants. The same starts and reads, without the tenant filter."""

    tenant_scoped = False
