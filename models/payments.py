"""Payments: one attempt per checkout, and every processor webhook event that was received
(behavior.md part B §6; decisions D13–D15).

* `PaymentAttempt` — one checkout session opened for an invoice's open balance. Its Stripe idempotency key
  is derived from its own id (`decabill-checkout-<id>`), so repeating the create call for the same attempt
  (a retried request, a lost response) gets the same session back instead of a second one.
  `request_fingerprint` (sha256 of what was asked: amount, currency, customer, URLs, metadata) decides
  whether a later pay request may reuse the attempt. `external_id` is the processor's session id, NULL
  until the processor answered. Status `pending` → `succeeded` | `failed` | `canceled`, or `superseded`
  (a newer checkout replaced it, or the invoice's open balance changed) → `expired` once its session is
  closed at the processor (decabill/payments/checkouts.py). `checkout_url` is set while the session may
  still be paid through it: a superseded attempt keeps it until its session is closed (the retry marker).
* `PaymentWebhookEvent` — every verified webhook event, stored under the UNIQUE (processor, event_id) in the
  same transaction as its effect on the invoice and the invoice's audit entry: a repeated or concurrent
  delivery of one event finds the key taken and changes nothing. `tenant_id` is the tenant named in the
  event's metadata (`default` when it names none or an unknown one).
* `PaymentSettlement` — one row per payment applied (or recorded as not applicable) to an invoice, under the
  UNIQUE (processor, payment_key): the processor's identity of the payment (Stripe: the Checkout Session id,
  else the PaymentIntent id). Several distinct events about one payment (`checkout.session.completed`, then
  `checkout.session.async_payment_succeeded`) settle it once; only a genuinely second payment is settled
  again (and, on a paid invoice, audited for a manual refund).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import Column, ForeignKey, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import Timestamped, id_field, money_field, tenant_field, timestamp_field


class PaymentAttemptStatus:
    PENDING = "pending"  # checkout opened (or being opened); nothing received yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the processor refused the checkout, or the (delayed) payment failed
    CANCELED = "canceled"  # the checkout session expired unpaid
    SUPERSEDED = "superseded"  # never to be paid or handed out again; its session is being closed
    EXPIRED = "expired"  # superseded, and its session is closed at the processor

    ALL = (PENDING, SUCCEEDED, FAILED, CANCELED, SUPERSEDED, EXPIRED)


class PaymentAttempt(Timestamped, table=True):
    __tablename__ = "payment_attempts"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_payment_attempts_idempotency_key"),
        UniqueConstraint("processor", "external_id", name="uq_payment_attempts_processor_external"),
        Index("ix_payment_attempts_tenant_invoice", "tenant_id", "invoice_id", "status", "created_at"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    invoice_id: uuid.UUID = Field(sa_column=Column(ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False))
    user_id: uuid.UUID | None = Field(default=None)  # who opened the checkout
    processor: str = Field(max_length=50)
    status: str = Field(default=PaymentAttemptStatus.PENDING, max_length=16)
    amount: Decimal = money_field(nullable=False)  # the open balance asked for, rounded to cents
    currency: str = Field(max_length=10)
    amount_paid: Decimal | None = money_field()  # what the processor reported as paid
    idempotency_key: str = Field(max_length=255)
    request_fingerprint: str = Field(max_length=64)
    external_id: str | None = Field(default=None, max_length=255)  # the processor's checkout session id
    checkout_url: str | None = Field(default=None, sa_type=Text)
    expires_at: dt.datetime | None = timestamp_field()  # when the processor closes the session
    completed_at: dt.datetime | None = timestamp_field()
    failure_reason: str | None = Field(default=None, max_length=500)


class WebhookEventResult:
    PROCESSED = "processed"
    IGNORED = "ignored"


class PaymentWebhookEvent(SQLModel, table=True):
    __tablename__ = "payment_webhook_events"
    __table_args__ = (
        UniqueConstraint("processor", "event_id", name="uq_payment_webhook_events_processor_event"),
        Index("ix_payment_webhook_events_tenant_invoice", "tenant_id", "invoice_id"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    processor: str = Field(max_length=50)
    event_id: str = Field(max_length=255)
    event_type: str = Field(max_length=100)
    payload_hash: str = Field(max_length=64)  # sha256 hex of the raw body
    result: str = Field(default=WebhookEventResult.PROCESSED, max_length=16)
    detail: str | None = Field(default=None, max_length=500)  # what was done, or why nothing was
    invoice_id: uuid.UUID | None = Field(default=None)  # no FK: the record outlives what it names
    attempt_id: uuid.UUID | None = Field(default=None)
    received_at: dt.datetime = timestamp_field(default_now=True)


class PaymentSettlement(SQLModel, table=True):
    __tablename__ = "payment_settlements"
    __table_args__ = (
        UniqueConstraint("processor", "payment_key", name="uq_payment_settlements_processor_payment"),
        Index("ix_payment_settlements_tenant_invoice", "tenant_id", "invoice_id"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    processor: str = Field(max_length=50)
    payment_key: str = Field(max_length=255)  # the processor's id of the payment (session / payment intent)
    invoice_id: uuid.UUID | None = Field(default=None)  # no FK: the record outlives what it names
    event_id: str = Field(max_length=255)  # the event that settled it
    amount: Decimal = money_field(nullable=False)
    currency: str = Field(max_length=10)
    settled_at: dt.datetime = timestamp_field(default_now=True)
