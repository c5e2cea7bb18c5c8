"""Admin customer profiles: create for a user, browse, read, change, delete — and deleting blocked while the user
has invoices or subscriptions (SQLite and PostgreSQL)."""

from __future__ import annotations

from models.invoicing import InvoiceAuditLog
from tests.admin.conftest import BASE, create_draft, line
from tests.helpers import assert_error
from tests.invoicing.conftest import rows, user_id

FULL = {"firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com", "addressLine1": "1 Navy Yard",
        "postalCode": "20374", "city": "Washington", "country": "us", "company": "USN"}


async def test_profile_crud_and_delete_rules(billing_api, admin, customer, plan):
    api = billing_api
    grace = await api.user_token(admin, "grace@example.com")
    gid = str(user_id(grace))

    # --- create ------------------------------------------------------------------------------------------------
    response = await api.post(f"{BASE}/customer-profiles", token=admin, json={"userId": gid, "firstName": "Grace"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["userId"] == gid and created["firstName"] == "Grace" and created["lastName"] is None
    assert "isComplete" not in created and "userEmail" not in created
    assert_error(await api.post(f"{BASE}/customer-profiles", token=admin, json={"userId": gid}), 400,
                 "Customer profile already exists for user")
    assert_error(await api.post(f"{BASE}/customer-profiles", token=admin,
                                json={"userId": "00000000-0000-4000-8000-000000000009"}), 404, "User not found")
    assert_error(await api.post(f"{BASE}/customer-profiles", token=admin,
                                json={"userId": gid, "country": "XX"}), 400)  # exists check or country: both 400
    nobody = await api.user_token(admin, "nobody@example.com")
    assert_error(await api.post(f"{BASE}/customer-profiles", token=admin,
                                json={"userId": str(user_id(nobody)), "country": "XX", "phone": "1" * 51}), 400,
                 "Country must be ISO 3166-1 alpha-2; Phone must be at most 50 characters")
    assert_error(await api.post(f"{BASE}/customer-profiles", token=admin,
                                json={"userId": str(user_id(nobody)), "stripeCustomerId": "cus_1"}), 400)
    assert_error(await api.post(f"{BASE}/customer-profiles", token=admin, json={"firstName": "No user"}), 400)

    # --- read --------------------------------------------------------------------------------------------------
    detail = (await api.get(f"{BASE}/customer-profiles/{created['id']}", token=admin)).json()
    assert detail["userEmail"] == "grace@example.com" and detail["isComplete"] is False
    assert_error(await api.get(f"{BASE}/customer-profiles/00000000-0000-4000-8000-000000000009", token=admin), 404,
                 "Customer profile with ID 00000000-0000-4000-8000-000000000009 not found")

    # --- update: only the fields sent; complete afterwards ------------------------------------------------------------
    response = await api.post(f"{BASE}/customer-profiles/{created['id']}", token=admin, json=FULL)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["country"] == "US" and updated["company"] == "USN" and updated["id"] == created["id"]
    response = await api.post(f"{BASE}/customer-profiles/{created['id']}", token=admin, json={"city": "Arlington"})
    assert response.json()["city"] == "Arlington" and response.json()["lastName"] == "Hopper"
    assert (await api.get(f"{BASE}/customer-profiles/{created['id']}", token=admin)).json()["isComplete"] is True
    assert_error(await api.post(f"{BASE}/customer-profiles/{created['id']}", token=admin, json={"country": "Germany"}), 400)
    assert_error(await api.post(f"{BASE}/customer-profiles/{created['id']}", token=admin, json={"userId": gid}), 400)
    assert_error(await api.post(f"{BASE}/customer-profiles/{created['id']}", token=admin, json={"postalCode": "1" * 31}),
                 400, "Postal code must be at most 30 characters")
    # the owner sees the admin's changes
    assert (await api.get("/customer-profile", token=grace)).json()["city"] == "Arlington"

    # --- list: newest change first, with email and completeness ------------------------------------------------------
    listed = (await api.get(f"{BASE}/customer-profiles?limit=1", token=admin)).json()
    assert listed["total"] == 2 and listed["limit"] == 1 and listed["offset"] == 0
    [first] = listed["items"]
    assert first["id"] == created["id"] and first["userEmail"] == "grace@example.com" and first["isComplete"] is True
    assert set(first) <= {"id", "userId", "userEmail", "firstName", "lastName", "company", "email", "country",
                          "isComplete", "stripeCustomerId", "createdAt", "updatedAt"}
    second = (await api.get(f"{BASE}/customer-profiles?limit=1&offset=1", token=admin)).json()["items"]
    assert [p["userEmail"] for p in second] == ["customer@example.com"]

    # --- delete: blocked while the user has invoices or subscriptions ------------------------------------------------
    draft = await create_draft(api, admin, gid, [line("Work", 1, 10)])
    assert_error(await api.delete(f"{BASE}/customer-profiles/{created['id']}", token=admin), 400,
                 "Cannot delete profile for user with invoices")
    assert (await api.delete(f"{BASE}/invoices/{draft['id']}", token=admin)).status_code == 204
    assert (await api.post("/subscriptions", token=grace, json={"planId": plan["id"]})).status_code == 201
    assert_error(await api.delete(f"{BASE}/customer-profiles/{created['id']}", token=admin), 400,
                 "Cannot delete profile for user with subscriptions")
    customer_profile = second[0]["id"]
    assert (await api.delete(f"{BASE}/customer-profiles/{customer_profile}", token=admin)).status_code == 204
    assert_error(await api.get(f"{BASE}/customer-profiles/{customer_profile}", token=admin), 404,
                 f"Customer profile with ID {customer_profile} not found")
    assert (await api.get("/customer-profile", token=customer)).json() == {}
    assert_error(await api.delete(f"{BASE}/customer-profiles/{customer_profile}", token=admin), 404)

    # every change is in the audit trail, with field names but not their values
    entries = sorted(await rows(InvoiceAuditLog, InvoiceAuditLog.process.like("customer_profile.%")),
                     key=lambda e: e.created_at)
    assert [e.process for e in entries] == ["customer_profile.admin_create", "customer_profile.admin_update",
                                            "customer_profile.admin_update", "customer_profile.admin_delete"]
    assert entries[0].context["fields"] == ["first_name"] and entries[0].actor_user_id == user_id(admin)
    assert entries[2].context["fields"] == ["city"] and "Arlington" not in str(entries[2].context)
    assert entries[3].user_id == user_id(customer)


async def test_deleting_a_profile_while_its_owner_orders_never_leaves_a_subscription_without_profile(
        billing_api, admin, plan):
    """The order re-checks the profile, locked, in the transaction that inserts the subscription; the delete takes
    the same lock and then looks for subscriptions. Whichever wins, the other answers 400 (never both succeed)."""
    import asyncio

    from tests.subscriptions.conftest import complete_profile

    api = billing_api
    for round_ in range(8):  # which side wins a round depends on scheduling; both outcomes are checked
        token = await api.user_token(admin, f"racer{round_}@example.com")
        profile = await complete_profile(api, token, email=f"racer{round_}@example.com")
        ordered, deleted = await asyncio.gather(
            api.post("/subscriptions", token=token, json={"planId": plan["id"]}),
            api.delete(f"{BASE}/customer-profiles/{profile['id']}", token=admin),
        )
        subscriptions = (await api.get("/subscriptions", token=token)).json()
        still_there = (await api.get(f"{BASE}/customer-profiles/{profile['id']}", token=admin)).status_code == 200
        if ordered.status_code == 201:
            assert_error(deleted, 400, "Cannot delete profile for user with subscriptions")
            assert still_there and len(subscriptions) == 1
        else:
            assert deleted.status_code == 204, deleted.text
            assert_error(ordered, 400, "Customer billing profile must be complete before ordering. "
                                       "Please complete your profile.")
            assert not still_there and subscriptions == []
