"""Invoices, their lines, usage records, the invoice audit log and the outbox of billing mails
(behavior.md part B §1, §3–§5, §9; decisions D7–D10, D16).

* `Invoice` — its `id` is the stable `invoiceRefId` of the API. `invoice_number` (`INV-<year>-<5 digits>`)
  is allocated when it is issued, inside the issuing transaction (D9); UNIQUE per tenant as the last line
  of defence. At issue the seller (BILLING_ISSUER_*) and the buyer (customer profile) are copied onto the
  invoice (`seller`, `buyer`), so a regenerated PDF shows what the original showed, whatever changed since.
  Money is stored with 4 decimal places (`money_field`); every stored amount is already rounded to cents.
* `InvoiceLine` — one line; `open_position_id` and `usage_record_id` are UNIQUE: a charge appears on one
  invoice line at most (D8, D10), however often a job runs.
* `UsageRecord` — a measured period of a subscription; `amount` is its cost (from the payload, rounded to
  cents) and `invoice_id` the invoice that billed it (NULL = not billed yet; D8: billed exactly once).
* `InvoiceAuditLog` — append-only: who did what to an invoice (status before → after), when, under which
  request id. Written in the same transaction as the change it records; nothing updates or deletes it.
* `MailDelivery` — one row per mail-worthy event, keyed UNIQUE (tenant, key) (`invoice-issued:<id>`,
  `renewal-reminder:<subscription>:<period end>`...): a mail is sent once per event even when the job
  that caused it runs twice. Status `pending` → `sending` (claimed) → `sent` | `failed` | `skipped`.

Billing history is never deleted with its owner: invoices and usage records reference users and
subscriptions with ON DELETE RESTRICT.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Date, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import Timestamped, id_field, money_field, tenant_field, timestamp_field


def _json(*, nullable: bool = False) -> Any:
    column = Column(JSON().with_variant(JSONB(), "postgresql"), nullable=nullable)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=dict, sa_column=column)


def _fk(target: str, ondelete: str, *, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index))


class InvoiceStatus:
    """The contract's statuses (InvoiceResponse.status). Transitions: decabill/invoicing/states.py."""

    DRAFT = "draft"
    ISSUED = "issued"
    PARTIALLY_PAID = "partially_paid"
    OVERDUE = "overdue"
    PAID = "paid"
    VOID = "void"

    ALL = (DRAFT, ISSUED, PARTIALLY_PAID, OVERDUE, PAID, VOID)
    OPEN = (ISSUED, PARTIALLY_PAID, OVERDUE)  # unpaid, payable, counted in "open/overdue"
    BILLED = (ISSUED, PARTIALLY_PAID, OVERDUE, PAID)  # statistics


class InvoiceOrigin:
    BILLING_RUN = "billing_run"  # the user's open positions on their billing day (or bill-now)
    SUBSCRIPTION_CHARGE = "subscription_charge"  # createInvoice
    MANUAL = "manual"  # admin billing


class TaxCategory:
    STANDARD = "standard"
    REDUCED = "reduced"


class Invoice(Timestamped, table=True):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "invoice_number", name="uq_invoices_tenant_number"),
        # the invoices of a user, newest first (migration 0028: id added, in place of ix_invoices_tenant_user): the
        # admin search's e-mail branch reads the ids of the matched users' invoices from the index alone
        Index("ix_invoices_tenant_user_created", "tenant_id", "user_id", "created_at", "id"),
        # the admin page, newest first, of one tenant (migration 0026): a small tenant among large ones no longer
        # walks every tenant's invoices through ix_invoices_created_at
        Index("ix_invoices_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_invoices_tenant_subscription", "tenant_id", "subscription_id", "created_at"),
        Index("ix_invoices_tenant_status_due", "tenant_id", "status", "due_date"),
    )

    id: uuid.UUID = id_field()  # the API's invoiceRefId
    tenant_id: str = tenant_field()
    user_id: uuid.UUID = _fk("users.id", "RESTRICT")
    # The subscription of the first line (NULL for manual invoices without one); lines name their own.
    subscription_id: uuid.UUID | None = _fk("subscriptions.id", "RESTRICT", nullable=True)
    origin: str = Field(default=InvoiceOrigin.MANUAL, max_length=32)
    invoice_number: str | None = Field(default=None, max_length=64)
    status: str = Field(default=InvoiceStatus.DRAFT, max_length=32)
    currency: str = Field(default="EUR", max_length=10)
    subtotal_net: Decimal = money_field(nullable=False, default=Decimal(0))
    tax_total: Decimal = money_field(nullable=False, default=Decimal(0))
    total_gross: Decimal = money_field(nullable=False, default=Decimal(0))
    amount_paid: Decimal = money_field(nullable=False, default=Decimal(0))
    balance_due: Decimal = money_field(nullable=False, default=Decimal(0))
    period_start: dt.datetime | None = timestamp_field()  # service period (e-invoice BG-14)
    period_end: dt.datetime | None = timestamp_field()
    issued_at: dt.datetime | None = timestamp_field()
    due_date: dt.date | None = Field(default=None, sa_type=Date)
    paid_at: dt.datetime | None = timestamp_field()
    voided_at: dt.datetime | None = timestamp_field()
    void_reason: str | None = Field(default=None, max_length=500)
    credit_note_number: str | None = Field(default=None, max_length=80)  # `<invoice number>-CN`, set on void
    seller: dict[str, Any] | None = _json(nullable=True)  # BILLING_ISSUER_* at issue
    buyer: dict[str, Any] | None = _json(nullable=True)  # the customer profile at issue
    # EU VAT (decabill/taxes): the rule determined at issue, the buyer's country it was determined for, and the
    # snapshot (rule, buyer country, VAT ID and its VIES proof, rates and their source) never recomputed
    tax_rule: str | None = Field(default=None, max_length=20)
    tax_country: str | None = Field(default=None, max_length=2)
    tax_snapshot: dict[str, Any] | None = _json(nullable=True)
    order_reference: str | None = Field(default=None, max_length=64)  # subscription number(s) of the lines
    pdf_storage_key: str | None = Field(default=None, max_length=512)
    credit_note_storage_key: str | None = Field(default=None, max_length=512)
    payment_processor: str | None = Field(default=None, max_length=50)
    external_payment_id: str | None = Field(default=None, max_length=255)
    # The last dunning step applied to this invoice (decabill/dunning): its 1-based place in the policy,
    # its action and when. NULL = none yet.
    dunning_level: int | None = Field(default=None)
    dunning_action: str | None = Field(default=None, max_length=16)
    dunning_applied_at: dt.datetime | None = timestamp_field()


class InvoiceCount(SQLModel, table=True):
    """How many invoices the tenant has, kept by the database itself (triggers of migration 0024 on every insert
    into and delete from `invoices`, whichever code path or tool writes them), so the admin list's unfiltered
    total is one primary-key read instead of a count that grows with the table. On PostgreSQL the trigger is
    deferred to the commit: the row is locked for the commit only, not for a billing batch's whole transaction."""

    __tablename__ = "invoice_counts"

    tenant_id: str = Field(max_length=64, primary_key=True)
    invoices: int = Field(default=0)
    #: changed at the commit of every transaction that changes what the admin invoice list shows (PostgreSQL:
    #: triggers of migration 0029); a process serves an admin page it kept while this is unchanged
    list_version: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})


class InvoiceUserCount(SQLModel, table=True):
    """How many invoices a customer has in a tenant, kept by the database itself (triggers of migration 0030 on
    every insert into and delete from `invoices` and every change of an invoice's owner), so the admin search
    counts the invoices of the customers whose e-mail matches by one read per customer. No row or 0: none."""

    __tablename__ = "invoice_user_counts"

    tenant_id: str = Field(max_length=64, primary_key=True)
    user_id: uuid.UUID = Field(primary_key=True)
    invoices: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_invoice_position"),
        UniqueConstraint("open_position_id", name="uq_invoice_lines_open_position"),
        UniqueConstraint("usage_record_id", name="uq_invoice_lines_usage_record"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    invoice_id: uuid.UUID = _fk("invoices.id", "CASCADE", index=True)
    position: int = Field(default=0)  # 0-based order on the invoice
    description: str = Field(max_length=500)
    quantity: Decimal = money_field(nullable=False, default=Decimal(1))
    unit_price_net: Decimal = money_field(nullable=False)
    tax_category: str = Field(default=TaxCategory.STANDARD, max_length=16)
    tax_rate: Decimal = money_field(nullable=False)  # percent, as it applied when the line was made
    vat_category_code: str = Field(default="S", max_length=4)  # EN 16931 (UNTDID 5305): S, AE, O, Z, E
    vat_category_explicit: bool = Field(default=False)  # set by an admin: the tax rule leaves it as it is
    line_net: Decimal = money_field(nullable=False)
    line_tax: Decimal = money_field(nullable=False)
    line_gross: Decimal = money_field(nullable=False)
    subscription_id: uuid.UUID | None = _fk("subscriptions.id", "RESTRICT", nullable=True, index=True)
    open_position_id: uuid.UUID | None = _fk("open_positions.id", "RESTRICT", nullable=True)
    usage_record_id: uuid.UUID | None = _fk("usage_records.id", "RESTRICT", nullable=True)
    period_start: dt.datetime | None = timestamp_field()
    period_end: dt.datetime | None = timestamp_field()


class UsageRecord(SQLModel, table=True):
    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_tenant_subscription", "tenant_id", "subscription_id", "created_at"),
        Index("ix_usage_records_tenant_user_unbilled", "tenant_id", "user_id", "invoice_id"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    subscription_id: uuid.UUID = _fk("subscriptions.id", "RESTRICT")
    user_id: uuid.UUID = _fk("users.id", "RESTRICT")
    period_start: dt.datetime = timestamp_field(nullable=False)
    period_end: dt.datetime = timestamp_field(nullable=False)
    usage_source: str = Field(default="dataset", max_length=255)
    usage_payload: dict[str, Any] = _json()
    amount: Decimal = money_field(nullable=False, default=Decimal(0))  # net cost in cents; > 0 = billable
    invoice_id: uuid.UUID | None = _fk("invoices.id", "SET NULL", nullable=True)
    created_at: dt.datetime = timestamp_field(default_now=True, index=True)


class InvoiceAuditLog(SQLModel, table=True):
    __tablename__ = "invoice_audit_logs"
    __table_args__ = (Index("ix_invoice_audit_logs_tenant_invoice", "tenant_id", "invoice_id", "created_at"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    invoice_id: uuid.UUID | None = Field(default=None)  # no FK: entries outlive a deleted draft
    user_id: uuid.UUID | None = Field(default=None)  # the invoice's customer
    process: str = Field(max_length=64)  # `invoice.issue`, `invoice.void`, `invoice.overdue`, ...
    level: str = Field(default="info", max_length=8)  # info | warn | error
    message: str = Field(max_length=500)
    actor_type: str = Field(default="system", max_length=16)  # system | user | admin | api-key
    actor_user_id: uuid.UUID | None = Field(default=None)
    status_before: str | None = Field(default=None, max_length=32)
    status_after: str | None = Field(default=None, max_length=32)
    context: dict[str, Any] = _json()
    request_id: str | None = Field(default=None, max_length=128)
    created_at: dt.datetime = timestamp_field(default_now=True)


class MailStatus:
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class MailDelivery(SQLModel, table=True):
    __tablename__ = "mail_deliveries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key", name="uq_mail_deliveries_tenant_key"),
        Index("ix_mail_deliveries_status", "status", "created_at"),
        Index("ix_mail_deliveries_subscription_kind", "tenant_id", "subscription_id", "kind", "event_at"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    key: str = Field(max_length=200)
    kind: str = Field(max_length=32)  # invoice_issued | invoice_voided | invoice_overdue | renewal_reminder
    invoice_id: uuid.UUID | None = Field(default=None)
    subscription_id: uuid.UUID | None = Field(default=None)
    event_at: dt.datetime | None = timestamp_field()  # e.g. the renewal the reminder is about
    recipient: str | None = Field(default=None, max_length=255)
    status: str = Field(default=MailStatus.PENDING, max_length=16)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_type=Text)
    claimed_at: dt.datetime | None = timestamp_field()
    # The sender's claim: its token, and until when it holds the mail (renewed while it renders and sends).
    claim_token: uuid.UUID | None = Field(default=None)
    lease_until: dt.datetime | None = timestamp_field()
    # Written (and committed) right before the SMTP transaction: a claim that finds it set took over a mail whose
    # sender died during or just after the transaction — the SMTP server may have accepted it already.
    smtp_started_at: dt.datetime | None = timestamp_field()
    sent_at: dt.datetime | None = timestamp_field()
    created_at: dt.datetime = timestamp_field(default_now=True)


class DocumentStatus:
    PENDING = "pending"
    RENDERING = "rendering"
    RENDERED = "rendered"
    FAILED = "failed"


class InvoiceDocumentTask(SQLModel, table=True):
    """The durable task of rendering an issued invoice's PDF (+ Factur-X XML) and then sending its mail,
    recorded in the issuing transaction (issue #19): issuing commits first; rendering and mailing are their
    own idempotent jobs. `pending` → `rendering` (claimed; a claim older than the claim timeout counts as
    abandoned) → `rendered` (PDF stored, mail handed to the mail outbox) | `failed` (after the attempts)."""

    __tablename__ = "invoice_documents"
    __table_args__ = (
        UniqueConstraint("invoice_id", name="uq_invoice_documents_invoice"),
        Index("ix_invoice_documents_status", "status", "created_at"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    invoice_id: uuid.UUID = Field(sa_column=Column(ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False))
    status: str = Field(default=DocumentStatus.PENDING, max_length=16)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_type=Text)
    claimed_at: dt.datetime | None = timestamp_field()
    rendered_at: dt.datetime | None = timestamp_field()
    created_at: dt.datetime = timestamp_field(default_now=True)
