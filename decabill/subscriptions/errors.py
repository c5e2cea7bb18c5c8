"""Errors of subscriptions, items and backorders (messages from behavior.md part A §6, decisions D4, D5, D21).

Another user's or another tenant's subscription, item or backorder is "not found", exactly like a
missing one (the reference answered 400/403 for another user's rows; we never confirm they exist).
"""

from __future__ import annotations

import datetime as dt
import uuid

from decabill.errors import BadRequest, NotFound, ServiceUnavailable


class SubscriptionNotFound(NotFound):
    def __init__(self, subscription_id: uuid.UUID | str) -> None:
        super().__init__(f"Subscription with ID {subscription_id} not found")


class SubscriptionItemNotFound(NotFound):
    def __init__(self, item_id: uuid.UUID | str) -> None:
        super().__init__(f"Subscription item {item_id} not found")


class BackorderNotFound(NotFound):
    def __init__(self, backorder_id: uuid.UUID | str) -> None:
        super().__init__(f"Backorder with ID {backorder_id} not found")


class InvalidConfiguration(BadRequest):
    """Every problem of the effective configuration, joined with "; " (behavior.md §6.3 step 6)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class NotAvailable(BadRequest):
    """No capacity for the configuration and no backorder wanted (D4)."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "Configuration not available")


class HostnamesExhausted(ServiceUnavailable):
    """D21: a clear 503 instead of the reference's 500."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"Could not reserve a unique hostname after {attempts} attempts; please try again")


class MinimumCommitment(BadRequest):
    def __init__(self, until: dt.datetime) -> None:
        super().__init__(f"Minimum commitment not yet reached (until {until.isoformat().replace('+00:00', 'Z')})")


class AlreadyCanceled(BadRequest):
    def __init__(self) -> None:
        super().__init__("Subscription is already canceled")


class AlreadyPendingCancel(BadRequest):
    def __init__(self, effective_at: dt.datetime | None) -> None:
        when = f" at {effective_at.isoformat().replace('+00:00', 'Z')}" if effective_at else ""
        super().__init__(f"Subscription is already scheduled to be canceled{when}")


class NotPendingCancel(BadRequest):
    def __init__(self) -> None:
        super().__init__("Subscription is not pending cancel")


class CancellationAlreadyEffective(BadRequest):
    def __init__(self) -> None:
        super().__init__("The cancellation has already taken effect; the subscription can no longer be resumed")


class NotProvisioned(BadRequest):
    def __init__(self) -> None:
        super().__init__("Service is not provisioned yet")


class NotActive(BadRequest):
    def __init__(self, status: str) -> None:
        super().__init__(
            f"Service is not active (status: {status}). Only provisioned services can be queried or controlled."
        )


class SubscriptionEnded(BadRequest):
    def __init__(self) -> None:
        super().__init__("Subscription is canceled; its server has been removed")


class NoServerInfo(BadRequest):
    def __init__(self) -> None:
        super().__init__("Provider does not support server info")


class BackorderClosed(BadRequest):
    def __init__(self, status: str) -> None:
        super().__init__(f"Backorder is {status} and can no longer be retried")


class BackorderBusy(ServiceUnavailable):
    def __init__(self, backorder_id: uuid.UUID) -> None:
        super().__init__(f"Backorder {backorder_id} is being processed right now; please try again in a moment")


class AccountSuspended(BadRequest):
    """The customer's account is suspended for non-payment (dunning): no new orders, no start or restart."""

    def __init__(self, invoice_number: str | None) -> None:
        unpaid = f"invoice {invoice_number} is unpaid" if invoice_number else "an invoice is unpaid"
        super().__init__(f"Your account is suspended because {unpaid}. Pay it to reactivate your services.")
