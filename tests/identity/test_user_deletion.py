"""Deleting a user (DELETE /users/{id}): refused with 409 while billing records name the user, so invoices,
open positions, subscriptions and the rest are never deleted or orphaned; the account's own personal rows
(the customer profile) go with it."""

from __future__ import annotations

from decabill import db
from models.customers import CustomerProfile
from tests.admin.conftest import create_draft, line
from tests.helpers import assert_error
from tests.invoicing.conftest import rows, user_id
from tests.subscriptions.conftest import complete_profile, manual_plan, order

HINT = "billing records are kept, so lock the account instead to stop its access"


def _refused(response, owner, listed: str) -> None:
    assert_error(response, 409, f"User with ID {owner} is still used by {listed}; {HINT}")


async def test_a_user_with_a_subscription_is_not_deleted(api):
    admin = await api.admin_token()
    customer = await api.user_token(admin, "subscriber@example.com")
    await complete_profile(api, customer, email="subscriber@example.com")
    subscription = await order(api, customer, (await manual_plan(api, admin))["id"])
    owner = user_id(customer)

    _refused(await api.delete(f"/users/{owner}", token=admin), owner, "1 subscription")

    # Nothing went: the account, its profile and its subscription are all still there.
    assert (await api.get(f"/users/{owner}", token=admin)).status_code == 200
    assert (await api.get(f"/subscriptions/{subscription['id']}", token=customer)).status_code == 200
    assert (await api.get("/customer-profile", token=customer)).json()["email"] == "subscriber@example.com"


async def test_a_user_with_an_invoice_is_not_deleted(api):
    admin = await api.admin_token()
    customer = await api.user_token(admin, "invoiced@example.com")
    owner = user_id(customer)
    await create_draft(api, admin, owner, [line("Consulting", 1, 100)])

    _refused(await api.delete(f"/users/{owner}", token=admin), owner, "1 invoice")
    assert (await api.get(f"/users/{owner}", token=admin)).status_code == 200


async def test_a_user_with_nothing_is_deleted(api):
    admin = await api.admin_token()
    owner = user_id(await api.user_token(admin, "idle@example.com"))

    assert (await api.delete(f"/users/{owner}", token=admin)).status_code == 204
    assert_error(await api.get(f"/users/{owner}", token=admin), 404, "User not found")


async def test_the_customer_profile_goes_with_the_user(api):
    admin = await api.admin_token()
    customer = await api.user_token(admin, "profiled@example.com")
    await complete_profile(api, customer, email="profiled@example.com")
    owner = user_id(customer)
    assert len(await rows(CustomerProfile, CustomerProfile.user_id == owner)) == 1

    assert (await api.delete(f"/users/{owner}", token=admin)).status_code == 204
    assert await rows(CustomerProfile, CustomerProfile.user_id == owner) == []
    # The address is free again: an account with the same email starts without the old profile.
    again = await api.user_token(admin, "profiled@example.com")
    assert (await api.get("/customer-profile", token=again)).json() == {}


async def test_a_reference_added_after_the_check_is_still_a_409(api, monkeypatch):
    """The race: a row naming the user appears between the check and the delete. The foreign key refuses
    the delete and the answer is the same 409, never a 500."""
    admin = await api.admin_token()
    customer = await api.user_token(admin, "racer@example.com")
    owner = user_id(customer)
    await create_draft(api, admin, owner, [line("Consulting", 1, 100)])

    async def nothing_found(record):
        return []

    monkeypatch.setattr(db, "references", nothing_found)
    _refused(await api.delete(f"/users/{owner}", token=admin), owner, "1 other record")
    assert (await api.get(f"/users/{owner}", token=admin)).status_code == 200
