"""Errors of admin billing (messages from behavior.md part B §2.6, §7)."""

from __future__ import annotations

import uuid

from decabill.errors import BadRequest, NotFound


class AdminInvoiceNotFound(NotFound):
    """The reference's `findByIdOrThrow` message, with the id (distinct from `Invoice not found`)."""

    def __init__(self, invoice_id: uuid.UUID | str) -> None:
        super().__init__(f"Invoice {invoice_id} not found")


class OnlyDraftsCanBeModified(BadRequest):
    def __init__(self) -> None:
        super().__init__("Only draft invoices can be modified")


class SubscriptionOfAnotherUser(BadRequest):
    def __init__(self) -> None:
        super().__init__("Subscription does not belong to user")


class BillNowUserNotFound(BadRequest):
    """bill-now names an unknown user: 400 (behavior.md §2.6), not 404."""

    def __init__(self) -> None:
        super().__init__("User not found")


class CustomerProfileNotFound(NotFound):
    def __init__(self, profile_id: uuid.UUID | str) -> None:
        super().__init__(f"Customer profile with ID {profile_id} not found")


class CustomerProfileExists(BadRequest):
    def __init__(self) -> None:
        super().__init__("Customer profile already exists for user")


class ProfileOwnerHasInvoices(BadRequest):
    def __init__(self) -> None:
        super().__init__("Cannot delete profile for user with invoices")


class ProfileOwnerHasSubscriptions(BadRequest):
    def __init__(self) -> None:
        super().__init__("Cannot delete profile for user with subscriptions")


class InvalidDateRange(BadRequest):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(f"Invalid date range: {detail}" if detail else "Invalid date range")
