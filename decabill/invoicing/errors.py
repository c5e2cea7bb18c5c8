"""Errors of invoices and their documents (messages from behavior.md part B §3–§4).

Another user's or another tenant's invoice is "not found", exactly like a missing one.
"""

from __future__ import annotations

from http import HTTPStatus

from decabill.errors import BadRequest, DecabillError, NotFound


class InvoiceNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Invoice not found")


class DraftHasNoPdf(BadRequest):
    def __init__(self) -> None:
        super().__init__("Draft invoices have no PDF")


class NotVoid(BadRequest):
    def __init__(self) -> None:
        super().__init__("Void document is only available for voided invoices")


class TransitionRefused(BadRequest):
    """A status change the state machine does not allow from the invoice's current status."""


class NothingToBill(BadRequest):
    def __init__(self) -> None:
        super().__init__("No billable amount since last invoice")


class IssuerNotConfigured(BadRequest):
    """The operator has not configured the seller. A 400 with the variables to set, not the reference's
    500: the request is refused before anything is written, and the message tells what to fix."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"Billing issuer is not configured: set {', '.join(missing)}")


class ProfileIncompleteForInvoice(BadRequest):
    def __init__(self) -> None:
        super().__init__("Customer profile must be complete before issuing invoice")


class NegativeInvoiceTotal(BadRequest):
    def __init__(self) -> None:
        super().__init__("Invoice total must not be negative: a negative line may only be a discount on the other "
                         "lines; to take back an issued invoice, void it or issue a credit note")


class DocumentsNotRendered(DecabillError):
    """A round of the billing day's remaining PDFs (`billing_day.finish_documents`) rendered none and only
    failed: rendering is broken (fonts, disk), and going on would only use up the tasks' attempts."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, failed: int, error: str | None) -> None:
        super().__init__(f"None of {failed} invoice PDFs could be rendered: {error or 'see the log'}")
