"""Making, issuing and voiding invoices — the building blocks every invoicing path uses: the billing day
(`billing.bill_user`), `createInvoice`, and admin billing's manual invoices (draft → issue) and void.

All functions work in the caller's open transaction (`session`) and expect the invoice row locked by
the caller where they change it.

Lines and totals (behavior.md part B §3.4): per line net = r2(quantity × unit price), tax = r2(net × rate
/ 100), gross = net + tax (`decabill.documents.compute_line`); the invoice's subtotal and tax total are the
sums of the rounded line amounts, its total their sum (`decabill.documents.totals`). r2 rounds half up.
The rate of a line follows the invoice's EU VAT rule (decabill/taxes: domestic lines keep
BILLING_TAX_RATE_STANDARD / _REDUCED per `taxCategory`; reverse charge and outside the EU are 0 %; OSS the
buyer country's rate): a draft is rated with the rule of the day it is made, and issuing determines the rule
again for the issue day and the profile as it is then, re-rates the lines (except those whose EN 16931
category an admin set explicitly) and stores the snapshot (`Invoice.tax_rule`, `tax_country`,
`tax_snapshot`), which nothing recomputes afterwards.

Issuing (§3.3, D9): seller configured (400 naming the missing BILLING_ISSUER_* otherwise), customer profile
complete (400), then — last, so the counter row is locked for as little time as possible — the number
`INV-<year>-<5 digits>` from the tenant's gapless counter for that year (`decabill.numbering`) in the same
transaction: a rolled-back issue gives its number back, concurrent issues queue on the counter row.
issued_at = now, due date = issue day + `due_in_days` (14), seller and buyer copied onto the invoice.
The "invoice issued" mail (PDF attached) is recorded in the same transaction and sent after the commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.config import get_settings
from decabill.customers.service import find_profile
from decabill.taxes import service as taxes
from decabill.documents import compute_line, round_cents, totals
from decabill.documents import InvoiceLine as DocumentLine
from decabill.invoicing import documents, mail, rendering, states
from decabill.identity.service import user_email
from decabill.invoicing.errors import NegativeInvoiceTotal, ProfileIncompleteForInvoice
from decabill.invoicing.repository import InvoiceLineRepository, InvoiceRepository
from decabill.invoicing.states import Actor
from decabill.numbering import next_number, next_numbers
from decabill.observability import metrics
from models.customers import CustomerProfile
from models.invoicing import Invoice, InvoiceLine, InvoiceOrigin, InvoiceStatus, TaxCategory

DEFAULT_DUE_IN_DAYS = 14
CREATE_MESSAGE = "Created invoice draft"
UNIT_QUANTUM = Decimal("0.0001")


@dataclass(frozen=True)
class LineInput:
    description: str
    unit_price_net: Decimal
    quantity: Decimal = Decimal(1)
    tax_category: str = TaxCategory.STANDARD
    vat_category_code: str | None = None  # EN 16931 category set explicitly (admin); None: the tax rule decides
    subscription_id: uuid.UUID | None = None
    open_position_id: uuid.UUID | None = None
    usage_record_id: uuid.UUID | None = None
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None


def _line_tax(decision: taxes.Decision, category: str, explicit_code: str | None) -> tuple[str, Decimal]:
    """(EN 16931 category, rate) of a line of `category` (standard | reduced) under `decision`."""
    if category not in (TaxCategory.STANDARD, TaxCategory.REDUCED):
        raise ValueError(f"unknown tax category {category!r}")
    if explicit_code:
        return explicit_code, taxes.explicit_rate(explicit_code, category)
    return decision.category_code, decision.rate(category)


def buyer_of(profile: CustomerProfile | None) -> taxes.Buyer:
    if profile is None:
        return taxes.Buyer(country=None)
    return taxes.Buyer(country=profile.country, postal_code=profile.postal_code, vat_id=profile.vat_id,
                       vat_id_status=profile.vat_id_status, vat_id_checked_at=profile.vat_id_checked_at,
                       vat_id_consultation_number=profile.vat_id_consultation_number)


async def tax_decision(user_id: uuid.UUID, day: dt.date) -> taxes.Decision:
    return taxes.decide(buyer_of(await find_profile(user_id)), day)


def number_sequence(year: int) -> str:
    return f"invoice-{year}"


def format_invoice_number(year: int, value: int) -> str:
    return f"INV-{year}-{value:05d}"


@dataclass
class LineRow:
    """An invoice line as plain values (the columns of `InvoiceLine`): what the billing day's batch computes and
    writes with one INSERT, where an ORM object per line would cost more than the rest of the line's work."""

    id: uuid.UUID
    invoice_id: uuid.UUID
    position: int
    description: str
    quantity: Decimal
    unit_price_net: Decimal
    tax_category: str
    tax_rate: Decimal
    line_net: Decimal
    vat_category_code: str
    vat_category_explicit: bool
    line_tax: Decimal
    line_gross: Decimal
    subscription_id: uuid.UUID | None
    open_position_id: uuid.UUID | None
    usage_record_id: uuid.UUID | None
    period_start: dt.datetime | None
    period_end: dt.datetime | None


def _make_lines(invoice: Invoice, inputs: Sequence[LineInput], decision: taxes.Decision,
                make: Callable[..., Any] = InvoiceLine) -> list[Any]:
    """The invoice's lines (`make`: an `InvoiceLine` row, or a `LineRow` for the batch) from `inputs`."""
    lines = []
    for position, item in enumerate(inputs):
        code, rate = _line_tax(decision, item.tax_category, item.vat_category_code)
        quantity = Decimal(item.quantity).quantize(UNIT_QUANTUM)
        unit_price = Decimal(item.unit_price_net).quantize(UNIT_QUANTUM)
        net, tax, gross = compute_line(quantity, unit_price, rate)
        lines.append(make(
            id=uuid.uuid4(), invoice_id=invoice.id, position=position, description=item.description[:500],
            quantity=quantity, unit_price_net=unit_price, tax_category=item.tax_category, tax_rate=rate, line_net=net,
            vat_category_code=code, vat_category_explicit=item.vat_category_code is not None, line_tax=tax,
            line_gross=gross, subscription_id=item.subscription_id,
            open_position_id=item.open_position_id, usage_record_id=item.usage_record_id,
            period_start=item.period_start, period_end=item.period_end,
        ))
    return lines


async def _add_lines(session: AsyncSession, invoice: Invoice, inputs: Sequence[LineInput],
                     now: dt.datetime | None = None) -> list[InvoiceLine]:
    """The invoice's lines made from `inputs` under the tax rule of the day for its buyer, added to the
    session, and its totals set from them."""
    decision = await tax_decision(invoice.user_id, (now or db.utcnow()).astimezone(dt.timezone.utc).date())
    lines = InvoiceLineRepository(session)
    made = [lines.add(line) for line in _make_lines(invoice, inputs, decision)]
    _set_totals(invoice, made)
    return made


def draft(*, user_id: uuid.UUID, inputs: Sequence[LineInput], profile: CustomerProfile | None,
          subscription_id: uuid.UUID | None, origin: str, currency: str | None, order_reference: str | None,
          now: dt.datetime) -> tuple[Invoice, list[LineRow]]:
    """A draft invoice and its lines, totals set, in memory only: `create_draft` writes it row by row, the
    billing day's batch (`issue_batch`) many at once."""
    if not inputs:
        raise ValueError("an invoice needs at least one line")
    invoice = Invoice(id=uuid.uuid4(), user_id=user_id, subscription_id=subscription_id, origin=origin,
                      status=InvoiceStatus.DRAFT, currency=currency or get_settings().billing_currency,
                      order_reference=order_reference, created_at=now, updated_at=now)
    decision = taxes.decide(buyer_of(profile), now.astimezone(dt.timezone.utc).date())
    lines = _make_lines(invoice, inputs, decision, LineRow)
    _set_totals(invoice, lines)
    return invoice, lines


def create_context(invoice: Invoice) -> dict:
    """What the `invoice.create` audit entry records."""
    return {"subscriptionId": invoice.subscription_id, "totalGross": invoice.total_gross, "origin": invoice.origin}


def _rerate(invoice: Invoice, lines: Sequence[InvoiceLine | LineRow], decision: taxes.Decision) -> None:
    """Apply the rule determined at issue to the lines the rule decides, and the totals."""
    for line in lines:
        if line.vat_category_explicit:
            continue
        line.vat_category_code, line.tax_rate = _line_tax(decision, line.tax_category, None)
        line.line_net, line.line_tax, line.line_gross = compute_line(line.quantity, line.unit_price_net, line.tax_rate)
    _set_totals(invoice, lines)


def _snapshot(decision: taxes.Decision, day: dt.date) -> dict:
    """What the invoice keeps of its tax determination (JSON; decimals as strings)."""
    exemption = taxes.EXEMPTIONS.get(decision.category_code)
    return {
        "rule": decision.rule, "determinedOn": day.isoformat(), "sellerCountry": get_settings().billing_issuer_country,
        "buyerCountry": decision.buyer_country, "taxCountry": decision.tax_country,
        "vatCategoryCode": decision.category_code,
        "rates": {kind: str(rate) for kind, rate in decision.rates.items()}, "ratesSource": decision.rates_source,
        "buyerVatId": decision.vat_id,
        "vatIdCheckedAt": decision.vat_id_checked_at.isoformat() if decision.vat_id_checked_at else None,
        "vatIdConsultationNumber": decision.vat_id_consultation_number,
        "exemptionReasonCode": exemption[0] if exemption else None,
        "exemptionReason": exemption[1] if exemption else None,
    }


def _set_totals(invoice: Invoice, lines: Sequence[InvoiceLine | LineRow]) -> None:
    subtotal, tax_total, total = totals(
        DocumentLine(description=line.description, quantity=line.quantity, unit_price=line.unit_price_net,
                     tax_category="S", tax_rate=line.tax_rate, net_amount=round_cents(line.line_net),
                     tax_amount=round_cents(line.line_tax), gross_amount=round_cents(line.line_gross))
        for line in lines
    )
    invoice.subtotal_net, invoice.tax_total, invoice.total_gross = subtotal, tax_total, total
    invoice.balance_due = total
    starts = [line.period_start for line in lines if line.period_start]
    ends = [line.period_end for line in lines if line.period_end]
    invoice.period_start = min(starts) if starts else None
    invoice.period_end = max(ends) if ends else None


async def create_draft(session: AsyncSession, *, user_id: uuid.UUID, lines: Sequence[LineInput], actor: Actor,
                       subscription_id: uuid.UUID | None = None, origin: str = InvoiceOrigin.MANUAL,
                       currency: str | None = None, order_reference: str | None = None,
                       now: dt.datetime | None = None) -> Invoice:
    """A draft invoice with its lines and totals (no number yet), audited as `invoice.create`."""
    now = now or db.utcnow()
    invoice, rows = draft(user_id=user_id, inputs=lines, profile=await find_profile(user_id),
                          subscription_id=subscription_id, origin=origin, currency=currency,
                          order_reference=order_reference, now=now)
    await InvoiceRepository(session).create(invoice)  # before its lines (their foreign key)
    line_rows = InvoiceLineRepository(session)
    for row in rows:
        line_rows.add(InvoiceLine(**row.__dict__))
    await session.flush()
    await states.audit(session, invoice, "invoice.create", CREATE_MESSAGE, actor=actor, after=invoice.status,
                       context=create_context(invoice), now=now)
    return invoice


async def lines_of(session: AsyncSession, invoice_id: uuid.UUID) -> list[InvoiceLine]:
    return await InvoiceLineRepository(session).of_invoice(invoice_id)


async def recipient(session: AsyncSession, invoice: Invoice) -> str | None:
    return recipient_of(invoice, None) or await user_email(invoice.user_id)


def require_non_negative_total(invoice: Invoice) -> None:
    """Negative lines are discounts: the invoice as a whole never owes the customer money."""
    if invoice.total_gross is not None and invoice.total_gross < 0:
        raise NegativeInvoiceTotal()


def prepare_issue(invoice: Invoice, lines: Sequence[InvoiceLine | LineRow], profile: CustomerProfile | None,
                  seller: dict, *, now: dt.datetime, due_in_days: int = DEFAULT_DUE_IN_DAYS) -> None:
    """Everything issuing decides about one invoice, in memory: the checks (status, total, profile), the tax
    rule of the issue day (lines re-rated, snapshot), seller and buyer, due date. The number and the
    transition come after (`issue`, or the billing day's batch in `issue_batch`)."""
    if not states.allowed(invoice, "issue"):
        raise states.TransitionRefused(states.EVENTS["issue"].refusal(invoice))
    require_non_negative_total(invoice)
    if profile is None or not profile.is_complete:
        raise ProfileIncompleteForInvoice()
    day = now.astimezone(dt.timezone.utc).date()
    decision = taxes.decide(buyer_of(profile), day)
    _rerate(invoice, lines, decision)
    invoice.tax_rule, invoice.tax_country = decision.rule, decision.buyer_country
    invoice.tax_snapshot = _snapshot(decision, day)
    invoice.seller = seller
    invoice.buyer = documents.buyer_snapshot(profile, vat_id=decision.vat_id)
    invoice.due_date = now.astimezone(dt.timezone.utc).date() + dt.timedelta(days=due_in_days)
    invoice.payment_processor = get_settings().billing_default_payment_processor
    invoice.pdf_storage_key = documents.storage_key(invoice)


def recipient_of(invoice: Invoice, account_email: str | None) -> str | None:
    """Where the invoice's mails go: the buyer's email copied at issue, else the account's."""
    return (invoice.buyer or {}).get("email") or account_email


def issue_context(invoice: Invoice) -> dict:
    return {"invoiceNumber": invoice.invoice_number, "totalGross": invoice.total_gross}


async def issue(session: AsyncSession, invoice: Invoice, *, actor: Actor, due_in_days: int = DEFAULT_DUE_IN_DAYS,
                now: dt.datetime | None = None, defer_documents: bool = False) -> Invoice:
    """draft → issued with a gapless number, in the caller's transaction (invoice row locked by the caller).
    With `defer_documents` (the billing day) the PDF and the mail are not made at the commit but by their own
    jobs (`decabill.invoicing.rendering`)."""
    now = now or db.utcnow()
    if not states.allowed(invoice, "issue"):
        raise states.TransitionRefused(states.EVENTS["issue"].refusal(invoice))
    require_non_negative_total(invoice)
    seller = documents.seller_snapshot()
    prepare_issue(invoice, await InvoiceLineRepository(session).of_invoice(invoice.id),
                  await find_profile(invoice.user_id), seller, now=now, due_in_days=due_in_days)
    # Everything else first: from the number on, the tenant's counter row stays locked until the commit,
    # and every other issue of the tenant waits for it (issue #19).
    await mail.record(session, key=mail.issued_key(invoice.id), kind=mail.INVOICE_ISSUED,
                      recipient=await recipient(session, invoice), invoice_id=invoice.id,
                      deliver_after_commit=not defer_documents)
    if defer_documents:
        await rendering.record(session, invoice.id, now)
    year = now.astimezone(dt.timezone.utc).year
    invoice.invoice_number = format_invoice_number(year, await next_number(session, number_sequence(year)))
    await states.apply(session, invoice, "issue", actor=actor, now=now, context=issue_context(invoice))
    await session.flush()
    db.after_commit(_count_issued(invoice.origin))
    return invoice


@dataclass
class Drafted:
    """One invoice of the billing day's batch: made in memory (`draft`), with what issuing it needs."""

    invoice: Invoice
    lines: list[LineRow]
    account_email: str | None


async def issue_batch(session: AsyncSession, batch: Sequence[Drafted], *, actor: Actor, now: dt.datetime,
                      mark_billed: Callable[[], Awaitable[None]]) -> None:
    """Create and issue many drafts at once (the billing day), with exactly the rows `create_draft` + `issue(...,
    defer_documents=True)` write for each — invoice, lines, audit entries `invoice.create` and `invoice.issue`,
    the "invoice issued" mail and the document task, the `invoice.issued` webhook event — but each kind of row
    written in one statement (multi-row INSERT / executemany). `prepare_issue` must have run on every invoice.

    `mark_billed` (the caller's bulk UPDATE of what the invoices bill) runs once the invoices exist. The
    numbers come last, as ONE block per year from the tenant's counter (`UPDATE ... RETURNING`): the counter
    row is locked only for the few statements between that and the commit."""
    if not batch:
        return
    invoices = InvoiceRepository(session)
    for item in batch:
        invoices.add(item.invoice)
    await session.flush()  # the invoices before what points at them
    await InvoiceLineRepository(session).insert_many([dict(line.__dict__) for item in batch for line in item.lines])
    await mark_billed()
    await states.audit_many(session, [
        states.audit_entry(item.invoice, "invoice.create", CREATE_MESSAGE, actor=actor, after=InvoiceStatus.DRAFT,
                           context=create_context(item.invoice), now=now) for item in batch])
    await mail.record_many(session, [(mail.issued_key(item.invoice.id), mail.INVOICE_ISSUED,
                                      recipient_of(item.invoice, item.account_email), item.invoice.id)
                                     for item in batch])
    await rendering.record_many(session, [item.invoice.id for item in batch], now)
    await session.flush()
    # From here on the counter row is locked until the commit: only the numbers and what names them follow.
    year = now.astimezone(dt.timezone.utc).year
    first = await next_numbers(session, number_sequence(year), len(batch))
    for offset, item in enumerate(batch):
        item.invoice.invoice_number = format_invoice_number(year, first + offset)
    await states.apply_many(session, [item.invoice for item in batch], "issue", actor=actor, now=now,
                            context=issue_context)
    await session.flush()
    db.after_commit(_count_issued(InvoiceOrigin.BILLING_RUN, len(batch)))


def _count_issued(origin: str, count: int = 1):
    async def count_them() -> None:  # after the commit: a rolled-back issue was never issued
        metrics.INVOICES_ISSUED.labels(origin or "unknown").inc(count)

    return count_them


async def void(session: AsyncSession, invoice: Invoice, *, actor: Actor, reason: str | None = None,
               now: dt.datetime | None = None, context: dict | None = None) -> bool:
    """issued | partially_paid | overdue → void, with its credit note `<number>-CN`; a void invoice is left
    as it is (False). Paid: 400 `Cannot void a paid invoice`; draft: 400 (behavior.md §3.2)."""
    if invoice.status == InvoiceStatus.VOID:
        return False
    now = now or db.utcnow()
    invoice.void_reason = (reason or "").strip()[:500] or None
    await states.apply(session, invoice, "void", actor=actor, now=now, context=context or {})
    invoice.credit_note_storage_key = documents.storage_key(invoice, credit_note=True)
    await session.flush()
    await mail.record(session, key=f"invoice-voided:{invoice.id}", kind=mail.INVOICE_VOIDED,
                      recipient=await recipient(session, invoice), invoice_id=invoice.id)
    return True


def set_dunning_level(invoice: Invoice, level: int, action: str, now: dt.datetime) -> None:
    """The dunning step just applied to the (locked) invoice: shown on it as `dunningLevel`."""
    invoice.dunning_level, invoice.dunning_action, invoice.dunning_applied_at = level, action, now
    invoice.touch()


async def past_due_of_user(session: AsyncSession, user_id: uuid.UUID, today: dt.date, *,
                           exclude: uuid.UUID | None = None, lock: bool = False) -> list[Invoice]:
    """The user's unpaid invoices due before `today`, oldest due date first."""
    return await InvoiceRepository(session).past_due_of_user(user_id, today, exclude=exclude, for_update=lock)


async def locked(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice | None:
    """The tenant's invoice, row-locked for a change (blocking)."""
    return await InvoiceRepository(session).get(invoice_id, for_update=True)


# --- added by admin billing (issue 8): editing and deleting drafts ---------------------------------------


async def replace_lines(session: AsyncSession, invoice: Invoice, inputs: Sequence[LineInput]) -> list[InvoiceLine]:
    """Replace every line of a draft (row locked by the caller) and recompute its totals; positions 0..n-1."""
    if invoice.status != InvoiceStatus.DRAFT:
        raise ValueError("only a draft's lines can be replaced")
    if not inputs:
        raise ValueError("an invoice needs at least one line")
    await InvoiceLineRepository(session).delete_of_invoice(invoice.id)
    made = await _add_lines(session, invoice, inputs)
    invoice.touch()
    await session.flush()
    return made


async def delete_draft(session: AsyncSession, invoice: Invoice) -> None:
    """Delete a draft (row locked by the caller) with its lines; open positions and usage records it was
    made of become unbilled again (their foreign keys are ON DELETE SET NULL). Audit entries stay."""
    if invoice.status != InvoiceStatus.DRAFT:
        raise ValueError("only drafts can be deleted")
    await InvoiceLineRepository(session).delete_of_invoice(invoice.id)
    await InvoiceRepository(session).remove(invoice)
