"""Fixtures of the admin billing tests: the invoicing fixtures (configured seller, own PDF folder, an admin, a
customer with a complete profile, a `manual` plan, a controllable clock) plus small HTTP helpers."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from decabill import db
from models.subscriptions import OpenPosition
from tests.invoicing.conftest import (  # noqa: F401 - fixtures
    CUSTOMER_EMAIL,
    admin,
    billing_api,
    clock,
    customer,
    customer_with_subscription,
    plan,
    user_id,
)

BASE = "/admin/billing"


def line(description: str, quantity, price, category: str | None = None) -> dict:
    item = {"description": description, "quantity": quantity, "unitPriceNet": price}
    if category:
        item["taxCategory"] = category
    return item


async def create_draft(api, admin: str, owner: uuid.UUID | str, lines: list[dict], *, tenant: str | None = None,
                       **extra) -> dict:
    response = await api.post(f"{BASE}/invoices/manual", token=admin, tenant=tenant,
                              json={"userId": str(owner), "lineItems": lines, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def issue(api, admin: str, invoice_id: str, *, tenant: str | None = None, **body) -> dict:
    response = await api.post(f"{BASE}/invoices/{invoice_id}/issue", token=admin, tenant=tenant, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def action(api, admin: str, invoice_id: str, verb: str, *, tenant: str | None = None, **body) -> dict:
    response = await api.post(f"{BASE}/invoices/{invoice_id}/{verb}", token=admin, tenant=tenant, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def audit(api, admin: str, invoice_id: str, *, tenant: str | None = None) -> list[dict]:
    response = await api.get(f"{BASE}/invoices/{invoice_id}/audit-logs?limit=0", token=admin, tenant=tenant)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def processes(entries: list[dict]) -> list[str]:
    return [entry["process"] for entry in entries]


async def add_position(subscription: dict, owner: uuid.UUID, amount: str, *, tenant: str = "default",
                       days_ago: int = 30) -> OpenPosition:
    """An unbilled open position, as the subscription billing job records one (amount fixed, net)."""
    end = db.utcnow().replace(microsecond=0)
    position = OpenPosition(tenant_id=tenant, subscription_id=uuid.UUID(subscription["id"]), user_id=owner,
                            kind="recurring", description=f"Subscription {subscription['number']}",
                            period_start=end - dt.timedelta(days=days_ago), period_end=end, amount=Decimal(amount),
                            currency="EUR")
    async with db.transaction() as session:
        session.add(position)
    return position
