"""What admin billing shows: the invoice views of the invoicing area plus the owner, audit entries with
who / before → after / request id, customer profiles with the owner's email, and the statistics."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from decabill.invoicing.service import InvoiceView
from models.customers import CustomerProfile
from models.invoicing import InvoiceAuditLog


@dataclass
class AdminInvoiceView(InvoiceView):
    """AdminInvoiceListItem / ManualInvoiceDetailResponse: the invoice views plus `userId`, `userEmail`."""

    user_email: str | None = None


@dataclass
class AuditEntryView:
    """BillingAuditLogResponse. The contract has no fields for the actor, the status change and the request
    id, so they are shown inside `context` (`actor`, `actorUserId`, `statusBefore`, `statusAfter`,
    `requestId`), next to what the event recorded itself."""

    entry: InvoiceAuditLog

    def __getattr__(self, name: str) -> Any:
        return getattr(self.entry, name)

    @property
    def context(self) -> dict[str, Any]:
        actor_user_id = str(self.entry.actor_user_id) if self.entry.actor_user_id else None
        extra = {"actor": self.entry.actor_type, "actorUserId": actor_user_id,
                 "statusBefore": self.entry.status_before, "statusAfter": self.entry.status_after,
                 "requestId": self.entry.request_id}
        # what the event recorded itself wins a name clash (e.g. bill-now's own `requestId`)
        return {**{k: v for k, v in extra.items() if v is not None}, **(self.entry.context or {})}


@dataclass
class ProfileView:
    """AdminCustomerProfileListItem / AdminCustomerProfileDetailResponse: the profile plus the owner's email
    (`isComplete` is the profile's own completeness rule)."""

    profile: CustomerProfile
    user_email: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.profile, name)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class BillingSummaryView:
    active_subscriptions_count: int
    open_overdue_count: int
    open_overdue_total: Decimal
    unbilled_total: Decimal


@dataclass(frozen=True)
class SeriesPoint:
    period: str
    total_gross: Decimal


@dataclass(frozen=True)
class StatisticsSummaryView:
    series: list[SeriesPoint]
    total_gross: Decimal
    paid_count: int
    from_: dt.date
    to: dt.date
    group_by: str

    def __getattr__(self, name: str) -> Any:  # the contract's `from` is a Python keyword
        if name == "from":
            return self.from_
        raise AttributeError(name)


@dataclass(frozen=True)
class ProductPoint:
    plan_id: uuid.UUID
    plan_name: str
    total_gross: Decimal


@dataclass(frozen=True)
class StatisticsByProductView:
    items: list[ProductPoint] = field(default_factory=list)
    total_gross: Decimal = Decimal("0.00")
    from_: dt.date | None = None
    to: dt.date | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "from":
            return self.from_
        raise AttributeError(name)


@dataclass(frozen=True)
class BillNowView:
    queued: bool
    request_id: uuid.UUID
    user_count: int


@dataclass(frozen=True)
class TaxStatisticsItem:
    tax_rule: str | None
    country: str | None
    vat_category_code: str
    tax_rate: Decimal
    net: Decimal
    tax: Decimal


@dataclass(frozen=True)
class TaxStatisticsView:
    items: list[TaxStatisticsItem]
    net_total: Decimal
    tax_total: Decimal
    from_: dt.date
    to: dt.date

    def __getattr__(self, name: str) -> Any:  # the contract's `from` is a Python keyword
        if name == "from":
            return self.from_
        raise AttributeError(name)
