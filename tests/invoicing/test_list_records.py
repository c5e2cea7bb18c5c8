"""The invoice and subscription lists read only the columns their items show (`InvoiceRepository.LISTED`,
`SubscriptionRepository.LISTED`): each item answered through HTTP is exactly what the contract's shape gives for
the whole row as the ORM reads it — every field, with the same values — for invoices in each state the derived
fields tell apart (open with a balance: `canPay`; void with a credit note: `voidDocumentNumber`; a dunning step
applied: `dunningLevel`, `dunningAction`, `dunningAppliedAt`). A view field that needed a column the lists do
not read would be left out of the item, and this test would name it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import update

from decabill import db
from decabill.admin.views import AdminInvoiceView
from decabill.invoicing.views import InvoiceView
from decabill.shapes import dump
from models.identity import User
from models.invoicing import Invoice
from models.subscriptions import Subscription
from tests.invoicing.conftest import customer_with_subscription, iso, rows
from tests.subscriptions.conftest import manual_plan


def _ok(response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


async def test_list_items_are_the_whole_rows_shapes(billing_api, admin, clock):
    api = billing_api
    plan = await manual_plan(api, admin, basePrice="30.00")
    customer, subscription = await customer_with_subscription(api, admin, plan["id"], "lists@example.com")
    sid, user_id = subscription["id"], uuid.UUID(subscription["userId"])
    start = iso(subscription["currentPeriodStart"])
    made = []
    for days in (5, 10, 15):  # three issued invoices: what was used up to each day
        clock.set(start + dt.timedelta(days=days))
        created = await api.post(f"/invoices/{sid}", token=admin)
        assert created.status_code == 200, created.text
        made.append(created.json()["invoiceRefId"])
    voided = await api.post(f"/invoices/{sid}/ref/{made[0]}/void", token=admin)
    assert voided.status_code == 200, voided.text
    applied = start + dt.timedelta(days=20, microseconds=123456)
    async with db.transaction() as session:  # a dunning step on the second invoice (as decabill/dunning records it)
        await session.execute(update(Invoice).where(Invoice.id == uuid.UUID(made[1]))
                              .values(dunning_level=2, dunning_action="remind", dunning_applied_at=applied))

    invoices = {str(invoice.id): invoice for invoice in await rows(Invoice, Invoice.user_id == user_id)}
    assert set(invoices) == set(made)
    assert invoices[made[0]].credit_note_number and invoices[made[0]].status == "void"
    (owner,) = await rows(User, User.id == user_id)

    def whole(invoice_id: str, *, number: str | None = None) -> dict:
        return dump(InvoiceView(invoices[invoice_id], subscription_number=number), "InvoiceResponse")

    listed = _ok(await api.get(f"/invoices/{sid}", token=customer))
    assert sorted(item["id"] for item in listed) == sorted(made)
    for item in listed:
        assert item == whole(item["id"])
    by_id = {item["id"]: item for item in listed}
    assert by_id[made[0]]["voidDocumentNumber"] == invoices[made[0]].credit_note_number
    assert by_id[made[0]]["canDownloadVoidDocument"] is True
    assert (by_id[made[1]]["dunningLevel"], by_id[made[1]]["dunningAction"]) == (2, "remind")
    assert iso(by_id[made[1]]["dunningAppliedAt"]) == applied
    assert by_id[made[2]]["canPay"] is True and by_id[made[2]]["balance"] > 0
    # every field of the contract's InvoiceResponse that has a value is there
    assert {"id", "subscriptionId", "invoiceNumber", "status", "balance", "createdAt", "dueDate", "canPay",
            "canDownload", "canPreview", "canDownloadVoidDocument", "taxRule", "dunningLevel"} <= set(by_id[made[1]])

    open_overdue = _ok(await api.get("/invoices/open-overdue", token=customer))
    assert sorted(item["id"] for item in open_overdue) == sorted(made[1:])
    for item in open_overdue:
        assert item == whole(item["id"], number=subscription["number"])

    page = _ok(await api.get(f"/admin/billing/invoices?limit=20&userId={subscription['userId']}", token=admin))
    everything = _ok(await api.get("/admin/billing/invoices?limit=20", token=admin))
    searched = _ok(await api.get(f"/admin/billing/invoices?limit=20&search={subscription['number']}", token=admin))
    for answer in (page, everything, searched):
        assert sorted(item["id"] for item in answer["items"]) == sorted(made)
        for item in answer["items"]:
            expected = AdminInvoiceView(invoices[item["id"]], subscription_number=subscription["number"],
                                        user_email=owner.email)
            assert item == dump(expected, "AdminInvoiceListItem")

    # the subscriptions: each listed item is what the subscription's own route shapes from the whole row
    subscriptions = _ok(await api.get("/subscriptions", token=customer))
    assert [item["id"] for item in subscriptions] == [sid]
    assert subscriptions == [_ok(await api.get(f"/subscriptions/{sid}", token=customer))]
    (row,) = await rows(Subscription, Subscription.id == uuid.UUID(sid))
    assert subscriptions[0] == dump(row, "SubscriptionResponse")
    assert _ok(await api.get(f"/admin/billing/users/{subscription['userId']}/subscriptions", token=admin)) \
        == subscriptions
