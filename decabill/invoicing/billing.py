"""The billing day (behavior.md part B §1–§2, decisions D7, D8, D10) and `createInvoice`'s immediate charge.

Billing day of a user: `billing_day_of_month` when it is 1..28, else the UTC day of registration capped at
28 (`User.effective_billing_day`). "Today" is the UTC day of month capped at 28, as in the reference — so on
the 29th–31st the day-28 users are looked at again (harmless: what they had is billed).

`bill_user(user_id)` — the unit of the open-position invoicing job (and of admin bill-now):
ONE transaction that
1. takes the user's billing lock (PostgreSQL: a transaction-level advisory *try*-lock — a second unit for
   the same user at the same moment returns `busy` at once; SQLite: BEGIN IMMEDIATE serialises),
2. claims the user's unbilled open positions and unbilled usage records (`FOR UPDATE SKIP LOCKED`),
3. creates ONE invoice per currency (normally exactly one) with a line per position and per usage record,
4. marks them billed by that invoice (an UPDATE guarded by `invoice_id IS NULL` that must touch every row),
5. issues the invoice (its number from the gapless counter, D9) and records the "invoice issued" mail,
and commits — so positions are billed exactly when their invoice exists, once (UNIQUE line →
position / usage record as the last line of defence). A crash anywhere before the commit leaves
everything unbilled for the next run; nothing is half-done.

Amounts: a position carries its net amount (fixed by the subscription billing job, D7); a usage record
its cost from the payload (D8: billed once, here or by `createInvoice`). Lines are quantity 1 at the
amount rounded to cents, standard tax. Nothing is invoiced when the lines sum to less than 0.01.

`charge_subscription` (`createInvoice`, admin): bills what the subscription accrued since it was last
billed — the current period from its start up to now (capped at the period end and a cancellation) at
the subscription's period price, prorated like any period — plus its unbilled usage records, as one
issued invoice with a single line. Open positions already recorded are not touched. The charged span is
recorded as a `charge` open position billed by this invoice, and the current period then starts where
the charge ended, so the subscription billing job later bills only the rest of the period (never the
same time twice).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.catalog.service import find_service_plan
from decabill.documents import round_cents
from decabill.errors import BadRequest
from decabill.identity.service import user_emails, users_oldest_first
from decabill.customers.service import profiles_of
from decabill.invoicing.documents import seller_snapshot as documents_seller
from decabill.invoicing.repository import BillingDayRepository
from decabill.invoicing import invoices
from decabill.invoicing.errors import NothingToBill
from decabill.invoicing.invoices import LineInput
from decabill.invoicing.states import SYSTEM, Actor
from decabill.jobs import ledger
from decabill.subscriptions.errors import SubscriptionNotFound
from decabill.subscriptions.service import amount_for, record_position
from decabill.subscriptions.repository import OpenPositionRepository, SubscriptionRepository
from decabill.tenancy import current_tenant
from decabill.usage.repository import UsageRecordRepository
from models.identity import User
from models.invoicing import Invoice, InvoiceOrigin, UsageRecord
from models.subscriptions import OpenPosition, Subscription, SubscriptionStatus

log = structlog.get_logger("decabill.invoicing")

MIN_AMOUNT = Decimal("0.01")
LAST_BILLING_DAY = 28


@dataclass(frozen=True)
class BillingResult:
    status: str  # billed | nothing | busy
    invoices: tuple[Invoice, ...] = ()


def billing_today(now: dt.datetime) -> int:
    return min(now.astimezone(dt.timezone.utc).day, LAST_BILLING_DAY)


def billing_day(user: User) -> int:
    """Effective billing day; a stored value outside 1..28 is ignored (behavior.md §2.1)."""
    return billing_day_of(user.billing_day_of_month, user.created_at)


def billing_day_of(stored: int | None, registered: dt.datetime) -> int:
    """`billing_day` from the user's stored billing day and registration time."""
    if stored is not None and 1 <= stored <= LAST_BILLING_DAY:
        return stored
    return min(registered.astimezone(dt.timezone.utc).day, LAST_BILLING_DAY)


def _period_text(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start.astimezone(dt.timezone.utc):%Y-%m-%d} – {end.astimezone(dt.timezone.utc):%Y-%m-%d}"


def last_billing_day_start(day: int, now: dt.datetime) -> dt.datetime:
    """00:00 UTC of the most recent date on or before `now` whose day of month is `day` (1..28)."""
    today = now.astimezone(dt.timezone.utc).date()
    date = today.replace(day=day)
    if date > today:
        date = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=day)
    return dt.datetime.combine(date, dt.time.min, tzinfo=dt.timezone.utc)


def _missed_before(now: dt.datetime) -> dict[int, dt.datetime]:
    """Per billing day 1..28: something unbilled recorded before this moment means that day was missed."""
    return {day: last_billing_day_start(day, now) for day in range(1, LAST_BILLING_DAY + 1)}


async def users_due_page(limit: int, after: uuid.UUID | None = None, *, now: dt.datetime | None = None,
                         lowest: uuid.UUID | None = None, below: uuid.UUID | None = None) -> list[uuid.UUID]:
    """One page of the users due (see `users_due`), in id order after the keyset `after` (within
    [`lowest`, `below`) when given)."""
    now = now or db.utcnow()
    async with db.transaction() as session:
        return await BillingDayRepository(session).due_page(billing_today(now), _missed_before(now), limit, after,
                                                            lowest=lowest, below=below)


async def users_due(limit: int, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Users of the tenant with something unbilled whose billing day is today — or whose last billing day was
    missed: something unbilled is older than that day (the process was down, or the unit failed, when that
    day's run was due). The reference waited a whole month for the next billing day; we catch up at the next
    run. What arrives on or after a billing day waits for the next one, as before. In id order; all of them
    when `limit` is 0 (found by the database a page at a time)."""
    due: list[uuid.UUID] = []
    async for batch in due_batches(limit or DUE_PAGE, now=now):
        due += batch
        if limit and len(due) >= limit:
            return due[:limit]
    return due


DUE_PAGE = 1000


async def due_batches(size: int, *, now: dt.datetime | None = None, lowest: uuid.UUID | None = None,
                      below: uuid.UUID | None = None) -> AsyncIterator[list[uuid.UUID]]:
    """The users due (see `users_due`; within [`lowest`, `below`) when given) in batches of `size`, each read
    from the database when asked for (nothing per customer is kept)."""
    now = now or db.utcnow()
    after = None
    while True:
        rows = await users_due_page(size, after, now=now, lowest=lowest, below=below)
        if rows:
            yield rows
        if len(rows) < size:
            return
        after = rows[-1]


# The billing day's units: one per slice of the user id space. A fixed, small number of messages, all sent at
# once by the coordinator — so they sit in the queue before the PDF jobs their invoices cause, and no worker
# waits for a coordinator to page through 100,000 users. Ids are random (uuid4), so the slices hold about as
# many users each; every unit bills its slice batch by batch (`bill_users`), each batch its own transaction.
ID_SLICES = 64


def id_slices(count: int = ID_SLICES) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    """[lowest, below) bounds that cut the uuid space into `count` equal slices (the last one open)."""
    step = (1 << 128) // count
    bounds = [uuid.UUID(int=i * step) for i in range(count)]
    return [(low, bounds[i + 1] if i + 1 < count else None) for i, low in enumerate(bounds)]


async def bill_slice(lowest: uuid.UUID, below: uuid.UUID | None, *, batch_size: int,
                     now: dt.datetime | None = None) -> Counter:
    """Bill every user due in [lowest, below), `batch_size` at a time (the billing day's unit). Run again (after
    a crash, or twice at once) it bills only who is still due: each batch is one transaction, and a user
    another unit holds is skipped (`busy`) by that unit's lock."""
    now = now or db.utcnow()
    outcomes: Counter = Counter()
    async for batch in due_batches(batch_size, now=now, lowest=lowest, below=below):
        outcomes.update(await bill_users(batch, now=now))
    return outcomes


async def _try_lock_user(session: AsyncSession, user_id: uuid.UUID) -> bool:
    return await db.try_advisory_lock(session, f"invoicing:bill-user:{current_tenant()}:{user_id}")


async def _mark_billed(repository: OpenPositionRepository | UsageRecordRepository, ids: list[uuid.UUID],
                       invoice_id: uuid.UUID) -> None:
    changed = await repository.mark_billed(ids, invoice_id)
    if changed != len(ids):  # cannot happen under the locks taken; refuse rather than bill twice
        raise RuntimeError(f"{repository.model.__tablename__}: {len(ids) - changed} rows were billed meanwhile")


async def oldest_unbilled_by_user() -> dict[uuid.UUID, dt.datetime]:
    """Users of the tenant with unbilled open positions or usage (costing something), and when the oldest
    of it was recorded."""
    async with db.transaction() as session:
        oldest = await OpenPositionRepository(session).oldest_unbilled_by_user()
        for user_id, created_at in (await UsageRecordRepository(session).oldest_unbilled_by_user()).items():
            oldest[user_id] = min(created_at, oldest.get(user_id, created_at))
    return oldest


async def users_with_unbilled() -> list[uuid.UUID]:
    """Every user of the tenant with unbilled open positions or usage, oldest account first."""
    async with db.transaction():
        return [user.id for user in await users_oldest_first(list(await oldest_unbilled_by_user()))]


async def bill_user(user_id: uuid.UUID, *, now: dt.datetime | None = None, actor: Actor = SYSTEM) -> BillingResult:
    """Invoice everything the user has unbilled, in one transaction (the open-position invoicing unit)."""
    now = now or db.utcnow()
    started = time.perf_counter()
    async with db.transaction() as session:
        if not await _try_lock_user(session, user_id):
            return BillingResult("busy")
        positions = await OpenPositionRepository(session).claim_unbilled_of_user(user_id)
        usage = await UsageRecordRepository(session).claim_unbilled(user_id=user_id)
        if not positions and not usage:
            return BillingResult("nothing")
        subscriptions = await SubscriptionRepository(session).by_ids({p.subscription_id for p in positions}
                                                                     | {u.subscription_id for u in usage})
        groups: dict[str, tuple[list[OpenPosition], list[UsageRecord]]] = {}
        for position in positions:
            groups.setdefault(position.currency, ([], []))[0].append(position)
        for record in usage:
            groups.setdefault(subscriptions[record.subscription_id].currency, ([], []))[1].append(record)
        made = []
        for currency, (group_positions, group_usage) in groups.items():
            invoice = await _bill_group(session, user_id, currency, group_positions, group_usage, subscriptions,
                                        actor=actor, now=now)
            if invoice is not None:
                made.append(invoice)
        if not made:
            return BillingResult("nothing")
    log.info("invoicing.user_billed", invoices=[i.invoice_number for i in made],
             seconds=round(time.perf_counter() - started, 4))
    return BillingResult("billed", tuple(made))


def _groups(positions: list[OpenPosition], usage: list[UsageRecord], subscriptions: dict[uuid.UUID, Subscription]
            ) -> dict[str, tuple[list[OpenPosition], list[UsageRecord]]]:
    """A user's unbilled things by currency (one invoice each)."""
    groups: dict[str, tuple[list[OpenPosition], list[UsageRecord]]] = {}
    for position in positions:
        groups.setdefault(position.currency, ([], []))[0].append(position)
    for record in usage:
        groups.setdefault(subscriptions[record.subscription_id].currency, ([], []))[1].append(record)
    return groups


@dataclass(frozen=True)
class _Draft:
    lines: list[LineInput]
    subscription_id: uuid.UUID | None
    order_reference: str | None


def _draft_of(positions: list[OpenPosition], usage: list[UsageRecord],
              subscriptions: dict[uuid.UUID, Subscription]) -> _Draft | None:
    """What one invoice of the billing day is made of; None when it is worth less than a cent."""
    lines = [
        LineInput(description=f"{p.description}, {_period_text(p.period_start, p.period_end)}",
                  unit_price_net=round_cents(p.amount), subscription_id=p.subscription_id, open_position_id=p.id,
                  period_start=p.period_start, period_end=p.period_end)
        for p in positions
    ]
    for record in usage:
        number = subscriptions[record.subscription_id].number
        lines.append(LineInput(description=f"Usage {number}, {_period_text(record.period_start, record.period_end)}",
                               unit_price_net=round_cents(record.amount), subscription_id=record.subscription_id,
                               usage_record_id=record.id, period_start=record.period_start,
                               period_end=record.period_end))
    if sum((line.unit_price_net for line in lines), Decimal(0)) < MIN_AMOUNT:
        return None  # worth less than a cent: left for a later run
    numbers = dict.fromkeys(subscriptions[line.subscription_id].number for line in lines if line.subscription_id)
    return _Draft(lines, lines[0].subscription_id, ", ".join(numbers)[:64] or None)


async def _bill_group(session: AsyncSession, user_id: uuid.UUID, currency: str, positions: list[OpenPosition],
                      usage: list[UsageRecord], subscriptions: dict[uuid.UUID, Subscription], *, actor: Actor,
                      now: dt.datetime) -> Invoice | None:
    made = _draft_of(positions, usage, subscriptions)
    if made is None:
        return None
    invoice = await invoices.create_draft(
        session, user_id=user_id, lines=made.lines, actor=actor, subscription_id=made.subscription_id,
        origin=InvoiceOrigin.BILLING_RUN, currency=currency, order_reference=made.order_reference, now=now)
    await _mark_billed(OpenPositionRepository(session), [p.id for p in positions], invoice.id)
    await _mark_billed(UsageRecordRepository(session), [u.id for u in usage], invoice.id)
    await invoices.issue(session, invoice, actor=actor, now=now, defer_documents=True)
    return invoice


# --- the billing day's batch ---------------------------------------------------------------------------


async def bill_users(user_ids: list[uuid.UUID], *, now: dt.datetime | None = None,
                     actor: Actor = SYSTEM) -> Counter:
    """The billing day's unit: bill a batch of users (`bill_user` for each, with the same outcome and the same
    rows written) in ONE transaction whose rows are written in bulk (`invoices.issue_batch`). A user whose
    data cannot be invoiced (incomplete profile, ...) is left out of the batch and billed on their own
    afterwards (`bill_user`, which fails for them as it always did, logged); if the batch's transaction fails
    as a whole, every user is billed on their own. Returns how many users ended billed | nothing | busy |
    failed, and under `invoices` how many invoices were issued."""
    now = now or db.utcnow()
    started = time.perf_counter()
    try:
        outcomes, alone, made = await _bill_batch(user_ids, now=now, actor=actor)
    except Exception as exc:  # noqa: BLE001 - nothing of the batch was written; each user goes alone
        log.warning("invoicing.batch_failed", users=len(user_ids), error=str(exc), error_type=type(exc).__name__)
        outcomes, alone, made = Counter(), list(user_ids), 0
    outcomes["invoices"] += made
    if made:
        log.info("invoicing.batch_billed", users=len(user_ids), invoices=made,
                 seconds=round(time.perf_counter() - started, 4))
    for user_id in alone:
        try:
            result = await bill_user(user_id, now=now, actor=actor)
        except Exception as exc:  # noqa: BLE001 - one customer's failure must not stop the others
            log.error("invoicing.bill_user_failed", error=str(exc), error_type=type(exc).__name__)
            outcomes["failed"] += 1
            await _record_unit_of_one(user_id, exc)
            continue
        outcomes[result.status] += 1
        outcomes["invoices"] += len(result.invoices)
        await _record_unit_of_one(user_id, None)
    return outcomes


# The unit of one customer as the job ledger knows it: the `invoicing.bill_user` task and its arguments.
BILL_USER_UNIT = "invoicing.bill_user"


async def _record_unit_of_one(user_id: uuid.UUID, error: BaseException | None) -> None:
    """Record a customer billed on their own inside a batch as the unit of one customer that ran: a failure
    stays in the job ledger like a failed `invoicing.bill_user` (counted by the gauge
    decabill_billing_day_customers{state="failed"}, listed by `decabill jobs`) until the customer is billed."""
    await ledger.unit_finished(BILL_USER_UNIT, [current_tenant(), str(user_id)], {}, error)


async def _bill_batch(user_ids: list[uuid.UUID], *, now: dt.datetime,
                      actor: Actor) -> tuple[Counter, list[uuid.UUID], int]:
    """(outcomes, users to bill on their own, invoices made) of one batch transaction."""
    outcomes: Counter = Counter()
    alone: list[uuid.UUID] = []
    async with db.transaction() as session:
        tenant = current_tenant()
        locked = await db.try_advisory_locks(session, [f"invoicing:bill-user:{tenant}:{u}" for u in user_ids])
        mine = [user_id for user_id, ok in zip(user_ids, locked) if ok]
        outcomes["busy"] += len(user_ids) - len(mine)
        if not mine:
            return outcomes, alone, 0
        positions: dict[uuid.UUID, list[OpenPosition]] = {}
        for position in await OpenPositionRepository(session).claim_unbilled_of_users(mine):
            positions.setdefault(position.user_id, []).append(position)
        usage: dict[uuid.UUID, list[UsageRecord]] = {}
        for record in await UsageRecordRepository(session).claim_unbilled_of_users(mine):
            usage.setdefault(record.user_id, []).append(record)
        subscriptions = await SubscriptionRepository(session).by_ids(
            {p.subscription_id for rows in positions.values() for p in rows}
            | {u.subscription_id for rows in usage.values() for u in rows})
        profiles = await profiles_of(mine)
        emails = await user_emails(mine)
        seller = documents_seller()
        batch: list[invoices.Drafted] = []
        billed_positions: list[tuple[uuid.UUID, uuid.UUID]] = []
        billed_usage: list[tuple[uuid.UUID, uuid.UUID]] = []
        for user_id in mine:
            if user_id not in positions and user_id not in usage:
                outcomes["nothing"] += 1
                continue
            try:
                drafted = []
                for currency, (group_positions, group_usage) in _groups(positions.get(user_id, []),
                                                                        usage.get(user_id, []), subscriptions).items():
                    made = _draft_of(group_positions, group_usage, subscriptions)
                    if made is None:
                        continue
                    invoice, lines = invoices.draft(
                        user_id=user_id, inputs=made.lines, profile=profiles.get(user_id),
                        subscription_id=made.subscription_id, origin=InvoiceOrigin.BILLING_RUN, currency=currency,
                        order_reference=made.order_reference, now=now)
                    invoices.prepare_issue(invoice, lines, profiles.get(user_id), seller, now=now)
                    drafted.append((invoices.Drafted(invoice, lines, emails.get(user_id)),
                                    group_positions, group_usage))
            except Exception:  # noqa: BLE001 - this user's data: billed (or refused) on their own, after the batch
                alone.append(user_id)
                continue
            if not drafted:
                outcomes["nothing"] += 1
                continue
            outcomes["billed"] += 1
            for item, group_positions, group_usage in drafted:
                batch.append(item)
                billed_positions += [(p.id, item.invoice.id) for p in group_positions]
                billed_usage += [(u.id, item.invoice.id) for u in group_usage]

        async def mark_billed() -> None:
            await OpenPositionRepository(session).mark_billed_many(billed_positions)
            await UsageRecordRepository(session).mark_billed_many(billed_usage)

        await invoices.issue_batch(session, batch, actor=actor, now=now, mark_billed=mark_billed)
    return outcomes, alone, len(batch)


# --- createInvoice -----------------------------------------------------------------------------------


async def charge_subscription(subscription_id: uuid.UUID, description: str | None, *, actor: Actor,
                              now: dt.datetime | None = None) -> Invoice:
    """Bill the subscription's accrued time and unbilled usage now (see the module docstring)."""
    now = now or db.utcnow()
    async with db.transaction() as session:
        subscription = await SubscriptionRepository(session).get(subscription_id, for_update=True)
        if subscription is None:
            raise SubscriptionNotFound(subscription_id)
        start, until = subscription.current_period_start, _charge_until(subscription, now)
        accrued = Decimal(0)
        if start is not None and until is not None and until > start:
            plan = await find_service_plan(subscription.plan_id)
            accrued = amount_for(plan, subscription.period_price or Decimal(0), start, until)
        usage = await UsageRecordRepository(session).claim_unbilled(subscription_id=subscription_id)
        total = round_cents(accrued) + sum((record.amount for record in usage), Decimal(0))
        if total < MIN_AMOUNT:
            raise NothingToBill()
        position = None
        if round_cents(accrued) > 0:
            position = await record_position(session, subscription, "charge", start, until, accrued)
            if position is None:
                raise BadRequest("This period has just been billed; please try again")
        spans = [(r.period_start, r.period_end) for r in usage]
        if position is not None:
            spans.append((start, until))
        line = LineInput(description=(description or "").strip() or "Subscription charge", unit_price_net=total,
                         subscription_id=subscription.id, open_position_id=position.id if position else None,
                         period_start=min(span[0] for span in spans), period_end=max(span[1] for span in spans))
        invoice = await invoices.create_draft(session, user_id=subscription.user_id, lines=[line], actor=actor,
                                              subscription_id=subscription.id,
                                              origin=InvoiceOrigin.SUBSCRIPTION_CHARGE,
                                              currency=subscription.currency, order_reference=subscription.number,
                                              now=now)
        if position is not None:
            await _mark_billed(OpenPositionRepository(session), [position.id], invoice.id)
            subscription.current_period_start = until
            subscription.touch()
        await _mark_billed(UsageRecordRepository(session), [record.id for record in usage], invoice.id)
        await invoices.issue(session, invoice, actor=actor, now=now)
    return invoice


def _charge_until(subscription: Subscription, now: dt.datetime) -> dt.datetime | None:
    if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING_CANCEL):
        return None
    candidates = [now, subscription.current_period_end, subscription.cancel_effective_at]
    return min(c for c in candidates if c is not None)
