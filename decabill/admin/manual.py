"""Manual invoices (behavior.md part B §7.3, §3.3–§3.4): an admin drafts an invoice for a user of the
tenant, edits or deletes the draft, and issues it. Making lines and totals, issuing (gapless number, seller
and buyer copied, PDF with its EN 16931 XML, the "invoice issued" mail) and the audit trail are the
invoicing area's (`decabill.invoicing.invoices`, `.states`); this module adds the admin's rules and entries.

* Create: user of the tenant (404 `User not found`), optional subscription of the tenant (404
  `Subscription with ID <id> not found`) that must be that user's (400 `Subscription does not belong to
  user`). The lines of a draft tied to a subscription are that subscription's (turnover per plan counts
  them). Currency: the one sent (an ISO 4217 code), else the subscription's, else BILLING_CURRENCY.
  No customer profile is needed yet. Audit: `invoice.create` + `invoice.manual_create`.
* Update: replaces every line of a DRAFT (400 `Only draft invoices can be modified` otherwise); owner,
  subscription and currency stay. Audit `invoice.manual_update`.
* Delete: drafts only (same 400); positions it was made of become unbilled again. Audit
  `invoice.manual_delete` (the entries outlive the invoice).
* Issue: drafts only (same 400); the owner's customer profile must be complete (400 `Customer profile
  must be complete before issuing invoice`); due `dueInDays` days after the issue day (default 14).
  Audit `invoice.issue` + `invoice.manual_issue`.
* Each of them needs an admin *user*: the static API key has no user to record as the actor (400 `User
  not authenticated`, as the reference).

Input rules beyond the spec (400): description 1..500 characters; quantity above 0 (at least 0.0001) and
below 1 000 000, unit price money (`validation.money`) between −10^8 and 10^8, both with at most 4
decimal places (stored exactly, never rounded silently), quantity × price below 10^9 per line, at most 100
lines. A negative line is a discount: the draft's total must stay ≥ 0 (`invoicing.require_non_negative_total`,
also checked on every issue) — an issued invoice is taken back by voiding it or with a credit note.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pycountry
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.admin import invoices as admin_invoices
from decabill.admin.errors import OnlyDraftsCanBeModified, SubscriptionOfAnotherUser
from decabill.admin.views import AdminInvoiceView
from decabill.validation import decimal_number, money, text
from decabill.config import get_settings
from decabill.customers.service import find_profile
from decabill.identity.service import find_user
from decabill.errors import BadRequest
from decabill.identity.principal import Principal
from decabill.identity.service import UserNotFound
from decabill.invoicing import service as invoicing
from decabill.invoicing.service import Actor, DEFAULT_DUE_IN_DAYS, LineInput
from decabill.invoicing.errors import ProfileIncompleteForInvoice
from decabill.subscriptions.service import find_subscription
from models.invoicing import Invoice, InvoiceOrigin, InvoiceStatus, TaxCategory

MAX_LINES = 100
MAX_QUANTITY = Decimal("1000000")
MAX_UNIT_PRICE = Decimal("100000000")
MAX_LINE_AMOUNT = Decimal("1000000000")
MAX_DUE_IN_DAYS = 3650
QUANTUM = Decimal("0.0001")


# --- input -------------------------------------------------------------------------------------------------


def _quantity(value: Any) -> Decimal:
    """One message for every quantity out of range, whichever side (−1, 0, 1e308)."""
    quantity = decimal_number(value, "Quantity")
    if not 0 < quantity < MAX_QUANTITY:
        raise BadRequest(f"Quantity must be greater than 0 and less than {MAX_QUANTITY}")
    if quantity != quantity.quantize(QUANTUM):
        raise BadRequest("Quantity must have at most 4 decimal places")
    return quantity


def parse_lines(items: list[dict[str, Any]]) -> list[LineInput]:
    if not items:
        raise BadRequest("At least one line item is required")
    if len(items) > MAX_LINES:
        raise BadRequest(f"At most {MAX_LINES} line items are allowed")
    lines, problems = [], []
    for item in items:
        try:
            description = text(item["description"], "Description", max_length=500, required=True).strip()
            quantity = _quantity(item["quantity"])
            price = money(item["unitPriceNet"], "Unit price", limit=MAX_UNIT_PRICE, negative=True)
            if abs(quantity * price) >= MAX_LINE_AMOUNT:
                raise BadRequest(f"Line amount (quantity × unit price) must be less than {MAX_LINE_AMOUNT}")
            category = item.get("taxCategory") or TaxCategory.STANDARD  # enum checked by the spec
            # An explicit EN 16931 category overrides the invoice's tax rule for this line (enum checked by the spec)
            lines.append(LineInput(description=description, quantity=quantity, unit_price_net=price,
                                   tax_category=category, vat_category_code=item.get("vatCategoryCode")))
        except BadRequest as exc:
            if exc.message not in problems:
                problems.append(exc.message)
    if problems:
        raise BadRequest("; ".join(problems))
    return lines


def parse_currency(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.strip().upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise BadRequest("Currency must be an ISO 4217 code")
    return code


def _due_in_days(value: int | None) -> int:
    if value is None:
        return DEFAULT_DUE_IN_DAYS
    if value < 1:
        raise BadRequest("Due in days must be at least 1")
    if value > MAX_DUE_IN_DAYS:
        raise BadRequest(f"Due in days must be at most {MAX_DUE_IN_DAYS}")
    return value


# --- operations ---------------------------------------------------------------------------------------------


async def _draft(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice:
    invoice = await admin_invoices.locked_invoice(session, invoice_id)
    if invoice.status != InvoiceStatus.DRAFT:
        raise OnlyDraftsCanBeModified()
    return invoice


async def create_manual_invoice(principal: Principal, *, user_id: uuid.UUID, line_items: list[dict[str, Any]],
                                subscription_id: uuid.UUID | None = None, currency: str | None = None
                                ) -> AdminInvoiceView:
    admin_id = principal.require_user_id()
    lines = parse_lines(line_items)
    currency = parse_currency(currency)
    async with db.transaction() as session:
        if await find_user(user_id) is None:
            raise UserNotFound()
        subscription = None
        if subscription_id is not None:
            subscription = await find_subscription(subscription_id)
            if subscription.user_id != user_id:
                raise SubscriptionOfAnotherUser()
            lines = [replace(line, subscription_id=subscription.id) for line in lines]
        actor = Actor.of(principal)
        invoice = await invoicing.create_draft(
            session, user_id=user_id, lines=lines, actor=actor, subscription_id=subscription_id,
            origin=InvoiceOrigin.MANUAL,
            currency=currency or (subscription.currency if subscription else get_settings().billing_currency),
            order_reference=subscription.number if subscription else None)
        invoicing.require_non_negative_total(invoice)
        await invoicing.audit(session, invoice, "invoice.manual_create", "Admin created manual invoice draft", actor=actor,
                           after=invoice.status, context={"adminUserId": admin_id, "subscriptionId": subscription_id,
                                                          "totalGross": invoice.total_gross,
                                                          "currency": invoice.currency})
        return await admin_invoices.detail_view(session, invoice)


async def update_manual_invoice(principal: Principal, invoice_id: uuid.UUID, line_items: list[dict[str, Any]]
                                ) -> AdminInvoiceView:
    admin_id = principal.require_user_id()
    lines = parse_lines(line_items)
    async with db.transaction() as session:
        invoice = await _draft(session, invoice_id)
        if invoice.subscription_id is not None:
            lines = [replace(line, subscription_id=invoice.subscription_id) for line in lines]
        before = invoice.total_gross
        await invoicing.replace_lines(session, invoice, lines)
        invoicing.require_non_negative_total(invoice)
        await invoicing.audit(session, invoice, "invoice.manual_update", "Admin updated manual invoice draft",
                           actor=Actor.of(principal), before=invoice.status, after=invoice.status,
                           context={"adminUserId": admin_id, "previousTotalGross": before,
                                    "totalGross": invoice.total_gross, "lineCount": len(lines)})
        return await admin_invoices.detail_view(session, invoice)


async def delete_manual_invoice(principal: Principal, invoice_id: uuid.UUID) -> None:
    admin_id = principal.require_user_id()
    async with db.transaction() as session:
        invoice = await _draft(session, invoice_id)
        await invoicing.audit(session, invoice, "invoice.manual_delete", "Admin deleted manual invoice draft",
                           actor=Actor.of(principal), before=invoice.status, after="deleted",
                           context={"adminUserId": admin_id, "totalGross": invoice.total_gross})
        await invoicing.delete_draft(session, invoice)


async def issue_manual_invoice(principal: Principal, invoice_id: uuid.UUID, due_in_days: int | None = None
                               ) -> AdminInvoiceView:
    admin_id = principal.require_user_id()
    days = _due_in_days(due_in_days)
    async with db.transaction() as session:
        invoice = await _draft(session, invoice_id)
        profile = await find_profile(invoice.user_id)
        if profile is None or not profile.is_complete:
            raise ProfileIncompleteForInvoice()
        actor = Actor.of(principal)
        await invoicing.issue(session, invoice, actor=actor, due_in_days=days)
        await invoicing.audit(session, invoice, "invoice.manual_issue", "Admin issued manual invoice draft", actor=actor,
                           after=invoice.status, context={"adminUserId": admin_id, "dueInDays": days,
                                                          "invoiceNumber": invoice.invoice_number})
        return await admin_invoices.detail_view(session, invoice)
