"""The event catalogue: every type a webhook endpoint may subscribe to, and the contract schema its `data`
follows (spec/openapi.yaml documents each as `<Name>Event`; `WebhookEvent` is their union)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str
    schema: str  # component schema of `data`
    description: str


CATALOGUE: dict[str, EventType] = {e.name: e for e in (
    EventType("invoice.issued", "InvoiceResponse", "An invoice was issued (numbered, payable)."),
    EventType("invoice.paid", "InvoiceResponse", "An invoice was paid in full."),
    EventType("invoice.partially_paid", "InvoiceResponse", "A payment covered part of an invoice."),
    EventType("invoice.overdue", "InvoiceResponse", "An invoice passed its due date unpaid."),
    EventType("invoice.voided", "InvoiceResponse", "An invoice was voided (a credit note was issued)."),
    EventType("subscription.created", "SubscriptionResponse", "A subscription was ordered."),
    EventType("subscription.canceled", "SubscriptionResponse", "A subscription was canceled."),
    EventType("subscription.suspended", "SubscriptionResponse", "A subscription was suspended (dunning)."),
    EventType("subscription.reactivated", "SubscriptionResponse", "A suspended subscription is active again."),
    EventType("backorder.created", "BackorderResponse", "An order waits for capacity as a backorder."),
    EventType("backorder.fulfilled", "BackorderResponse", "A backorder was provisioned."),
    EventType("payment.failed", "InvoiceResponse", "A payment of the invoice failed at the processor."),
    EventType("customer.created", "CustomerProfileResponse", "A customer profile was created."),
)}

NAMES = tuple(CATALOGUE)
