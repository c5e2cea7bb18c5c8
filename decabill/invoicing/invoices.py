"""Making, issuing and voiding invoices — the building blocks every invoicing path uses: the billing day
(`billing.bill_user`), `createInvoice`, and admin billing's manual invoices (draft → issue) and void.

All functions work in the caller's open transaction (`session`) and expect the invoice row locked by
the caller where they change it.

Lines and totals (behavior.md part B §3.4): per line net = r2(quantity × unit price), tax = r2(net × rate
/ 100), gross = net + tax (`decabill.documents.compute_line`); the invoice's subtotal and tax total are the
sums of the rounded line amounts, its total their sum (`decabill.documents.totals`). r2 rounds half up.
The rate of a category (standard: BILLING_TAX_RATE_STANDARD, reduced: BILLING_TAX_RATE_REDUCED) is
fixed on the line when the line is made.

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
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.config import get_settings
from decabill.customers.service import find_profile
from decabill.documents import compute_line, round_cents, totals
from decabill.documents import InvoiceLine as DocumentLine
from decabill.invoicing import documents, mail, states
from decabill.identity.service import user_email
from decabill.invoicing.errors import ProfileIncompleteForInvoice
from decabill.invoicing.repository import InvoiceLineRepository, InvoiceRepository
from decabill.invoicing.states import Actor
from decabill.numbering import next_number
from decabill.observability import metrics
from models.invoicing import Invoice, InvoiceLine, InvoiceOrigin, InvoiceStatus, TaxCategory

DEFAULT_DUE_IN_DAYS = 14
UNIT_QUANTUM = Decimal("0.0001")


@dataclass(frozen=True)
class LineInput:
    description: str
    unit_price_net: Decimal
    quantity: Decimal = Decimal(1)
    tax_category: str = TaxCategory.STANDARD
    subscription_id: uuid.UUID | None = None
    open_position_id: uuid.UUID | None = None
    usage_record_id: uuid.UUID | None = None
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None


def tax_rate(category: str) -> Decimal:
    settings = get_settings()
    if category == TaxCategory.REDUCED:
        return settings.billing_tax_rate_reduced
    if category == TaxCategory.STANDARD:
        return settings.billing_tax_rate_standard
    raise ValueError(f"unknown tax category {category!r}")


def number_sequence(year: int) -> str:
    return f"invoice-{year}"


def format_invoice_number(year: int, value: int) -> str:
    return f"INV-{year}-{value:05d}"


def _make_lines(invoice: Invoice, inputs: Sequence[LineInput]) -> list[InvoiceLine]:
    lines = []
    for position, item in enumerate(inputs):
        rate = tax_rate(item.tax_category)
        quantity = Decimal(item.quantity).quantize(UNIT_QUANTUM)
        unit_price = Decimal(item.unit_price_net).quantize(UNIT_QUANTUM)
        net, tax, gross = compute_line(quantity, unit_price, rate)
        lines.append(InvoiceLine(
            invoice_id=invoice.id, position=position, description=item.description[:500],
            quantity=quantity, unit_price_net=unit_price, tax_category=item.tax_category, tax_rate=rate, line_net=net,
            line_tax=tax, line_gross=gross, subscription_id=item.subscription_id,
            open_position_id=item.open_position_id, usage_record_id=item.usage_record_id,
            period_start=item.period_start, period_end=item.period_end,
        ))
    return lines


def _add_lines(session: AsyncSession, invoice: Invoice, inputs: Sequence[LineInput]) -> list[InvoiceLine]:
    """The invoice's lines made from `inputs`, added to the session, and its totals set from them."""
    lines = InvoiceLineRepository(session)
    made = [lines.add(line) for line in _make_lines(invoice, inputs)]
    _set_totals(invoice, made)
    return made


def _set_totals(invoice: Invoice, lines: Sequence[InvoiceLine]) -> None:
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
    if not lines:
        raise ValueError("an invoice needs at least one line")
    now = now or db.utcnow()
    invoice = await InvoiceRepository(session).create(Invoice(
        user_id=user_id, subscription_id=subscription_id, origin=origin, status=InvoiceStatus.DRAFT,
        currency=currency or get_settings().billing_currency, order_reference=order_reference, created_at=now,
        updated_at=now))
    _add_lines(session, invoice, lines)
    await session.flush()
    await states.audit(session, invoice, "invoice.create", "Created invoice draft", actor=actor, after=invoice.status,
                       context={"subscriptionId": subscription_id, "totalGross": invoice.total_gross,
                                "origin": origin}, now=now)
    return invoice


async def lines_of(session: AsyncSession, invoice_id: uuid.UUID) -> list[InvoiceLine]:
    return await InvoiceLineRepository(session).of_invoice(invoice_id)


async def recipient(session: AsyncSession, invoice: Invoice) -> str | None:
    buyer_email = (invoice.buyer or {}).get("email")
    if buyer_email:
        return buyer_email
    return await user_email(invoice.user_id)


async def issue(session: AsyncSession, invoice: Invoice, *, actor: Actor, due_in_days: int = DEFAULT_DUE_IN_DAYS,
                now: dt.datetime | None = None) -> Invoice:
    """draft → issued with a gapless number, in the caller's transaction (invoice row locked by the caller)."""
    now = now or db.utcnow()
    if not states.allowed(invoice, "issue"):
        raise states.TransitionRefused(states.EVENTS["issue"].refusal(invoice))
    seller = documents.seller_snapshot()
    profile = await find_profile(invoice.user_id)
    if profile is None or not profile.is_complete:
        raise ProfileIncompleteForInvoice()
    invoice.seller = seller
    invoice.buyer = documents.buyer_snapshot(profile)
    invoice.due_date = now.astimezone(dt.timezone.utc).date() + dt.timedelta(days=due_in_days)
    invoice.payment_processor = get_settings().billing_default_payment_processor
    invoice.pdf_storage_key = documents.storage_key(invoice)
    year = now.astimezone(dt.timezone.utc).year
    invoice.invoice_number = format_invoice_number(year, await next_number(session, number_sequence(year)))
    await states.apply(session, invoice, "issue", actor=actor, now=now,
                       context={"invoiceNumber": invoice.invoice_number, "totalGross": invoice.total_gross})
    await session.flush()
    await mail.record(session, key=f"invoice-issued:{invoice.id}", kind=mail.INVOICE_ISSUED,
                      recipient=await recipient(session, invoice), invoice_id=invoice.id)
    db.after_commit(_count_issued(invoice.origin))
    return invoice


def _count_issued(origin: str):
    async def count() -> None:  # after the commit: a rolled-back issue was never issued
        metrics.INVOICES_ISSUED.labels(origin or "unknown").inc()

    return count


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
    made = _add_lines(session, invoice, inputs)
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
