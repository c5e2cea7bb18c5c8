"""The caller's billing profile (behavior.md part A §5): upsert, validation, completeness, isolation."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import assert_error
from tests.subscriptions.conftest import PROFILE, manual_plan


@pytest.fixture
async def admin(api) -> str:
    return await api.admin_token()


@pytest.fixture
async def user(api, admin) -> str:
    return await api.user_token(admin, "customer@example.com")


async def test_no_profile_yet_is_200_with_an_empty_object(api, user):
    response = await api.get("/customer-profile", token=user)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}


async def test_first_save_creates_later_saves_change_only_what_is_sent(api, user):
    created = await api.post("/customer-profile", token=user, json={"firstName": "Ada", "country": "de"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["firstName"] == "Ada" and body["country"] == "DE"  # codes are stored upper case
    assert body["lastName"] is None and body["stripeCustomerId"] is None
    assert {"id", "userId", "createdAt", "updatedAt"} <= set(body)

    updated = await api.post("/customer-profile", token=user, json={"lastName": "Lovelace", "email": "Ada@Example.COM"})
    assert updated.status_code == 200
    assert updated.json()["firstName"] == "Ada" and updated.json()["lastName"] == "Lovelace"
    assert updated.json()["email"] == "Ada@example.com"  # the domain is normalised
    assert updated.json()["id"] == body["id"]

    got = await api.get("/customer-profile", token=user)
    assert got.status_code == 200 and got.json() == updated.json()


@pytest.mark.parametrize("field, value, message", [
    ("country", "XX", "Country must be ISO 3166-1 alpha-2"),
    ("country", "D1", "Country must be ISO 3166-1 alpha-2"),
    ("email", "not-an-address@", "Email must be valid"),
    ("email", "a@b", "Email must be valid"),
    ("postalCode", "1" * 31, "Postal code must be at most 30 characters"),
    ("phone", "+" + "1" * 50, "Phone must be at most 50 characters"),
    ("city", "x" * 256, "City must be at most 255 characters"),
    ("company", "Null\x00Byte", "Company must not contain NUL characters"),
])
async def test_invalid_fields_are_400_with_a_clear_message(api, user, field, value, message):
    assert_error(await api.post("/customer-profile", token=user, json={field: value}), 400, message)


async def test_every_problem_is_reported_and_nothing_is_saved(api, user):
    body = assert_error(await api.post("/customer-profile", token=user, json={"country": "XX", "email": "bad@"}), 400)
    assert body["message"] == "Country must be ISO 3166-1 alpha-2; Email must be valid"
    assert (await api.get("/customer-profile", token=user)).json() == {}


async def test_server_maintained_and_unknown_fields_are_refused(api, user):
    for field in ("stripeCustomerId", "userId", "vatNumber"):
        body = assert_error(await api.post("/customer-profile", token=user, json={field: "x"}), 400)
        assert field in body["message"]
    assert_error(await api.post("/customer-profile", token=user, json={"country": "DEU"}), 400)  # spec: 2 characters


async def test_the_api_key_has_no_profile(api, make_api, env):
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="key-1")
    keyed = await make_api()
    assert_error(await keyed.get("/customer-profile", token="key-1"), 400, "User not authenticated")
    assert_error(await keyed.post("/customer-profile", token="key-1", json={"firstName": "A"}), 400,
                 "User not authenticated")


async def test_profiles_are_per_user_and_per_tenant(api, admin, user):
    other = await api.user_token(admin, "other@example.com")
    await api.post("/customer-profile", token=user, json={"firstName": "Ada"})
    assert (await api.get("/customer-profile", token=other)).json() == {}
    acme_admin = await api.admin_token("boss@acme.example", tenant="acme")
    assert (await api.get("/customer-profile", token=acme_admin, tenant="acme")).json() == {}
    assert_error(await api.get("/customer-profile", token=user, tenant="acme"), 401)


async def test_concurrent_first_saves_make_one_profile(api, user):
    responses = await asyncio.gather(*(api.post("/customer-profile", token=user, json={"city": f"City {i}"})
                                       for i in range(5)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1


async def test_ordering_needs_a_complete_profile(api, admin, user):
    plan = await manual_plan(api, admin)
    message = "Customer billing profile must be complete before ordering. Please complete your profile."
    assert_error(await api.post("/subscriptions", token=user, json={"planId": plan["id"]}), 400, message)
    # Checked before the plan: an unknown plan still gets the profile message.
    assert_error(await api.post("/subscriptions", token=user,
                                json={"planId": "00000000-0000-4000-8000-000000000000"}), 400, message)
    incomplete = {**PROFILE, "postalCode": "   "}  # whitespace is not content
    await api.post("/customer-profile", token=user, json=incomplete)
    assert_error(await api.post("/subscriptions", token=user, json={"planId": plan["id"]}), 400, message)
    await api.post("/customer-profile", token=user, json={"postalCode": "10115"})
    ordered = await api.post("/subscriptions", token=user, json={"planId": plan["id"]})
    assert ordered.status_code == 201, ordered.text
