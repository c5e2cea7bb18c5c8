"""Queries on the payments domain's tables: payment attempts (one checkout each) and received webhooks."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_

from decabill.repository import Repository, page
from models.invoicing import Invoice, InvoiceStatus
from models.payments import PaymentAttempt, PaymentAttemptStatus, PaymentSettlement, PaymentWebhookEvent


class PaymentAttemptRepository(Repository[PaymentAttempt]):
    model = PaymentAttempt

    async def newest_pending(self, invoice_id: uuid.UUID, processor_id: str, fingerprint: str) -> PaymentAttempt | None:
        """The newest pending attempt of the invoice that asked the processor for exactly this."""
        statement = (self.statement()
                     .where(PaymentAttempt.invoice_id == invoice_id, PaymentAttempt.processor == processor_id,
                            PaymentAttempt.status == PaymentAttemptStatus.PENDING,
                            PaymentAttempt.request_fingerprint == fingerprint)
                     .order_by(PaymentAttempt.created_at.desc(), PaymentAttempt.id).limit(1))
        return await self.one_or_none(statement)

    async def other_pending(self, attempt: PaymentAttempt) -> list[PaymentAttempt]:
        """The invoice's other pending attempts, oldest first, locked (in that order)."""
        statement = (self.statement().where(PaymentAttempt.invoice_id == attempt.invoice_id,
                                            PaymentAttempt.id != attempt.id,
                                            PaymentAttempt.status == PaymentAttemptStatus.PENDING)
                     .order_by(PaymentAttempt.created_at, PaymentAttempt.id))
        return await self.all(self.for_update(statement))

    async def with_checkout_of(self, invoice_id: uuid.UUID) -> list[uuid.UUID]:
        """Ids of the invoice's pending or superseded attempts that still have a checkout URL, oldest first (the
        order their sessions are closed in)."""
        statement = self.statement(PaymentAttempt.id).where(
            PaymentAttempt.invoice_id == invoice_id, PaymentAttempt.checkout_url.is_not(None),
            PaymentAttempt.status.in_((PaymentAttemptStatus.PENDING, PaymentAttemptStatus.SUPERSEDED)),
        ).order_by(PaymentAttempt.created_at, PaymentAttempt.id)
        return await self.all(statement)

    async def to_close(self, limit: int) -> list[uuid.UUID]:
        """Superseded attempts whose session is still to be closed, and pending ones with a session whose
        invoice is no longer payable or owes another amount; longest untouched first."""
        moved_on = or_(Invoice.status.not_in(InvoiceStatus.OPEN), PaymentAttempt.amount != Invoice.balance_due)
        statement = (self.statement(PaymentAttempt.id).join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
                     .where(PaymentAttempt.checkout_url.is_not(None),
                            or_(PaymentAttempt.status == PaymentAttemptStatus.SUPERSEDED,
                                (PaymentAttempt.status == PaymentAttemptStatus.PENDING) & moved_on))
                     .order_by(PaymentAttempt.updated_at, PaymentAttempt.id))
        return await self.all(page(statement, limit, 0))

    async def by_external_id(self, processor_id: str, external_id: str) -> PaymentAttempt | None:
        """Locked."""
        return await self.get_by(PaymentAttempt.processor == processor_id, PaymentAttempt.external_id == external_id,
                                 for_update=True)

    async def of_invoice(self, attempt_id: uuid.UUID, invoice_id: uuid.UUID, processor_id: str) -> PaymentAttempt | None:
        """Locked."""
        return await self.get_by(PaymentAttempt.id == attempt_id, PaymentAttempt.invoice_id == invoice_id,
                                 PaymentAttempt.processor == processor_id, for_update=True)


class PaymentWebhookEventRepository(Repository[PaymentWebhookEvent]):
    model = PaymentWebhookEvent

    async def store_once(self, **values: Any) -> uuid.UUID | None:
        """Store a received event under its unique (processor, event id); None when it was stored before."""
        return await self.insert_if_missing({"id": uuid.uuid4(), **values}, ["processor", "event_id"])

    async def set_result(self, record_id: uuid.UUID, **values: Any) -> None:
        await self.execute(self.update(PaymentWebhookEvent.id == record_id, **values))


class PaymentSettlementRepository(Repository[PaymentSettlement]):
    model = PaymentSettlement

    async def settle_once(self, **values: Any) -> uuid.UUID | None:
        """Record a payment under its unique (processor, payment key); None when it was settled before (by
        this or another event about the same payment)."""
        return await self.insert_if_missing({"id": uuid.uuid4(), **values}, ["processor", "payment_key"])
