"""VAT IDs on customer profiles: format check (python-stdnum), VIES verification through the VIES fake (its REST
wire format), the proof kept with the profile, `pending` when VIES is down and the re-check job with backoff."""

from __future__ import annotations

import datetime as dt

from decabill.customers import service as customers
from decabill.tenancy import bound_tenant
from tests.helpers import assert_error
from tests.taxes.conftest import FR_PROFILE, FR_VAT_ID, customer


async def test_a_valid_vat_id_is_verified_with_vies_and_kept_with_its_proof(tax_api, admin, vies):
    vies.register(FR_VAT_ID)
    token, _ = await customer(tax_api, admin, "fr@example.com", FR_PROFILE)
    response = await tax_api.post("/customer-profile", token=token, json={"vatId": "fr 403 032 650 45"})
    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["vatId"] == FR_VAT_ID and profile["vatIdStatus"] == "valid"
    assert profile["vatIdConsultationNumber"].startswith("WAPI") and profile["vatIdCheckedAt"]
    # The request VIES got: the number without its prefix, and the seller as requester (for the consultation number).
    assert vies.checks()[-1] == {"countryCode": "FR", "vatNumber": "40303265045",
                                 "requesterMemberStateCode": "DE", "requesterNumber": "123456789"}
    assert (await tax_api.get("/customer-profile", token=token)).json()["vatIdStatus"] == "valid"

    # Removing it: an empty string.
    cleared = (await tax_api.post("/customer-profile", token=token, json={"vatId": ""})).json()
    assert cleared["vatId"] is None and cleared["vatIdStatus"] is None


async def test_a_wrong_format_or_an_unknown_number_is_a_400_and_nothing_is_saved(tax_api, admin, vies):
    token, _ = await customer(tax_api, admin, "fr@example.com", FR_PROFILE)
    checks_before = len(vies.checks())
    response = await tax_api.post("/customer-profile", token=token, json={"vatId": "FR40303265046", "city": "Lyon"})
    assert_error(response, 400, "VAT ID is not valid: wrong format for FR (The number's checksum or check digit is invalid.)")
    assert len(vies.checks()) == checks_before  # the format check refused it before VIES was asked
    response = await tax_api.post("/customer-profile", token=token, json={"vatId": "DE136695976"})
    assert_error(response, 400, "VAT ID is not valid: it belongs to another country than the profile's (FR)")

    # Well-formed, but VIES does not know it.
    response = await tax_api.post("/customer-profile", token=token, json={"vatId": FR_VAT_ID, "city": "Lyon"})
    assert_error(response, 400, "VAT ID is not valid: VIES does not know it as an active VAT registration")
    profile = (await tax_api.get("/customer-profile", token=token)).json()
    assert profile["vatId"] is None and profile["city"] == "Paris"


async def test_vies_unavailable_saves_pending_and_the_job_rechecks_with_backoff(tax_api, admin, vies, clock):
    start = clock.set(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc))
    token, _ = await customer(tax_api, admin, "fr@example.com", FR_PROFILE)
    vies.register(FR_VAT_ID)
    vies.fail_next("MS_UNAVAILABLE")
    response = await tax_api.post("/customer-profile", token=token, json={"vatId": FR_VAT_ID})
    assert response.status_code == 200, response.text
    assert response.json()["vatIdStatus"] == "pending" and response.json()["vatIdConsultationNumber"] is None

    with bound_tenant("default"):
        assert await customers.pending_vat_ids(100) == []  # not due before the first delay (5 minutes)
        clock.set(start + dt.timedelta(minutes=5))
        [profile_id] = await customers.pending_vat_ids(100)
        vies.fail_next("MS_MAX_CONCURRENT_REQ")
        assert await customers.recheck_vat_id(profile_id) == "pending"
        clock.set(start + dt.timedelta(minutes=14))
        assert await customers.pending_vat_ids(100) == []  # the second delay is 10 minutes after that attempt
        clock.set(start + dt.timedelta(minutes=15))
        assert await customers.pending_vat_ids(100) == [profile_id]
        assert await customers.recheck_vat_id(profile_id) == "valid"
        assert await customers.pending_vat_ids(100) == []
    profile = (await tax_api.get("/customer-profile", token=token)).json()
    assert profile["vatIdStatus"] == "valid" and profile["vatIdConsultationNumber"].startswith("WAPI")


async def test_the_recheck_records_invalid_when_vies_then_says_so(tax_api, admin, vies, clock):
    start = clock.set(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc))
    token, _ = await customer(tax_api, admin, "fr@example.com", FR_PROFILE)
    vies.fail_next("SERVICE_UNAVAILABLE")
    assert (await tax_api.post("/customer-profile", token=token, json={"vatId": FR_VAT_ID})).json()["vatIdStatus"] \
        == "pending"
    with bound_tenant("default"):
        clock.set(start + dt.timedelta(hours=1))
        [profile_id] = await customers.pending_vat_ids(100)
        assert await customers.recheck_vat_id(profile_id) == "invalid"
    assert (await tax_api.get("/customer-profile", token=token)).json()["vatIdStatus"] == "invalid"


async def test_admins_set_and_see_the_vat_id(tax_api, admin, vies):
    vies.register(FR_VAT_ID)
    token, user_id = await customer(tax_api, admin, "fr@example.com", FR_PROFILE)
    listed = (await tax_api.get("/admin/billing/customer-profiles", token=admin)).json()["items"]
    profile_id = next(item["id"] for item in listed if item["userId"] == user_id)
    response = await tax_api.post(f"/admin/billing/customer-profiles/{profile_id}", token=admin,
                                  json={"vatId": "40303265045"})  # without prefix: the profile's country
    assert response.status_code == 200, response.text
    assert response.json()["vatId"] == FR_VAT_ID and response.json()["vatIdStatus"] == "valid"
    detail = (await tax_api.get(f"/admin/billing/customer-profiles/{profile_id}", token=admin)).json()
    assert detail["vatIdStatus"] == "valid" and detail["vatIdConsultationNumber"].startswith("WAPI")
    response = await tax_api.post(f"/admin/billing/customer-profiles/{profile_id}", token=admin,
                                  json={"vatId": "FR12345"})
    assert response.status_code == 400
