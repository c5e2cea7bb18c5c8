"""The provider registry over HTTP: getProviderDetails and getProviderServerTypes against the fake
Hetzner and DigitalOcean APIs, including their error shapes (behavior.md part A §4.2, §4.6, D19)."""

from __future__ import annotations

import pytest

from tests.helpers import assert_error

SERVER_TYPES = "/service-types/providers/{}/server-types"


async def test_both_built_ins_are_listed_with_their_schemas_even_without_tokens(api, admin):
    response = await api.get("/service-types/providers", token=admin)
    assert response.status_code == 200
    hetzner, digital_ocean = response.json()
    assert (hetzner["id"], hetzner["displayName"]) == ("hetzner", "Hetzner Cloud")
    assert (digital_ocean["id"], digital_ocean["displayName"]) == ("digital-ocean", "DigitalOcean")

    schema = hetzner["configSchema"]
    assert schema["required"] == ["serverType", "location", "service"] and schema["basePriceFromField"] == "serverType"
    assert schema["properties"]["location"]["enum"] == ["fsn1", "nbg1", "hel1", "ash", "hil", "sgp"]
    assert schema["properties"]["service"]["enum"] == ["controller", "manager"]
    assert schema["properties"]["firewallId"]["type"] == "number"
    assert schema["properties"]["git"]["properties"]["setupMode"]["enum"] == ["clone", "empty"]
    assert all("description" in prop for prop in schema["properties"].values())

    do_schema = digital_ocean["configSchema"]
    assert do_schema["required"] == ["serverType", "region", "service"]
    assert "firewallId" not in do_schema["properties"] and "location" not in do_schema["properties"]
    assert do_schema["properties"]["region"]["enum"][:3] == ["ams3", "blr1", "fra1"]

    # listed, but asking the API needs the token (the reference's message)
    assert_error(await api.get(SERVER_TYPES.format("hetzner"), token=admin), 400,
                 "HETZNER_API_TOKEN environment variable is not set")
    assert_error(await api.get(SERVER_TYPES.format("digital-ocean"), token=admin), 400,
                 "DIGITALOCEAN_API_TOKEN environment variable is not set")
    # D19: an unknown provider is the contract's 400, not the reference's empty list
    assert_error(await api.get(SERVER_TYPES.format("linode"), token=admin), 400, "Provider not supported")
    assert_error(await api.get(SERVER_TYPES.format("hetzner")), 401)


async def test_hetzner_server_types_from_the_live_api(cloud_api, fake_cloud):
    admin = await cloud_api.admin_token()
    response = await cloud_api.get(SERVER_TYPES.format("hetzner"), token=admin)
    assert response.status_code == 200
    by_id = {t["id"]: t for t in response.json()}
    assert set(by_id) == {"cx22", "cx32", "cpx11", "cax11"}  # cx11 is deprecated
    # name = description, prices = gross price of the fsn1 entry as Hetzner publishes it
    assert by_id["cpx11"] == {"id": "cpx11", "name": "CPX 11", "cores": 2, "memory": 2.0, "disk": 40,
                              "priceMonthly": 5.1765, "priceHourly": 0.00833, "description": "CPX 11"}
    assert by_id["cx32"]["priceMonthly"] == 8.092

    # a type sold out in every location is not offered (once the cache has expired, see below) ...
    fake_cloud.reset()
    for location in ("fsn1", "nbg1"):
        fake_cloud.hetzner.capacity[("cx32", location)] = False
    # ... but the list is served from the short cache (PROVIDER_CACHE_SECONDS) without asking again
    assert "cx32" in {t["id"] for t in (await cloud_api.get(SERVER_TYPES.format("hetzner"), token=admin)).json()}
    assert len([r for r in fake_cloud.hetzner.requests if r["path"] == "/v1/server_types"]) == 0


async def test_the_cache_expires(env, make_api, fake_cloud):
    fake_cloud.reset()
    env.update(HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url,
               PROVIDER_MAX_RETRIES="0", PROVIDER_CACHE_SECONDS="0")
    api = await make_api()
    admin = await api.admin_token()
    await api.get(SERVER_TYPES.format("hetzner"), token=admin)
    fake_cloud.hetzner.capacity[("cx32", "fsn1")] = False
    fake_cloud.hetzner.capacity[("cx32", "nbg1")] = False
    listed = await api.get(SERVER_TYPES.format("hetzner"), token=admin)
    assert "cx32" not in {t["id"] for t in listed.json()}
    assert len([r for r in fake_cloud.hetzner.requests if r["path"] == "/v1/server_types"]) == 2
    assert fake_cloud.hetzner.requests[0]["headers"]["authorization"] == f"Bearer {fake_cloud.hetzner_token}"


async def test_digitalocean_sizes_from_the_live_api(cloud_api, fake_cloud):
    admin = await cloud_api.admin_token()
    response = await cloud_api.get(SERVER_TYPES.format("digital-ocean"), token=admin)
    assert response.status_code == 200
    by_id = {t["id"]: t for t in response.json()}
    assert "c-2" not in by_id  # not available
    # name = slug upper-cased, memory MB -> GB, USD list prices
    assert by_id["s-2vcpu-4gb"] == {"id": "s-2vcpu-4gb", "name": "S-2VCPU-4GB", "cores": 2, "memory": 4.0, "disk": 80,
                                    "priceMonthly": 24.0, "priceHourly": 0.03571, "description": "Basic"}
    request = fake_cloud.digitalocean.requests[0]
    assert request["path"] == "/v2/sizes" and request["headers"]["authorization"] == f"Bearer {fake_cloud.do_token}"


@pytest.mark.parametrize("provider, inject, message", [
    ("hetzner", lambda cloud: setattr(cloud.hetzner, "token", "rotated"),
     "Failed to fetch server types: unable to authenticate"),
    ("hetzner", lambda cloud: cloud.hetzner.rate_limit(),
     "Failed to fetch server types: limit of 3600 requests per hour reached"),
    ("hetzner", lambda cloud: cloud.hetzner.fail_next("service_error", 503, "service temporarily unavailable"),
     "Failed to fetch server types: service temporarily unavailable"),
    ("digital-ocean", lambda cloud: setattr(cloud.digitalocean, "token", "rotated"),
     "Failed to fetch server types: Unable to authenticate you"),
    ("digital-ocean", lambda cloud: cloud.digitalocean.rate_limit(),
     "Failed to fetch server types: API Rate limit exceeded."),
    ("digital-ocean", lambda cloud: cloud.digitalocean.fail_next("service_unavailable", 503, "Service is unavailable"),
     "Failed to fetch server types: Service is unavailable"),
])
async def test_provider_errors_are_documented_400s(cloud_api, fake_cloud, provider, inject, message):
    admin = await cloud_api.admin_token()
    inject(fake_cloud)
    try:
        assert_error(await cloud_api.get(SERVER_TYPES.format(provider), token=admin), 400, message)
    finally:
        fake_cloud.hetzner.token = fake_cloud.hetzner_token
        fake_cloud.digitalocean.token = fake_cloud.do_token


async def test_an_unreachable_provider_is_a_400(env, make_api):
    env.update(HETZNER_API_TOKEN="t", HETZNER_API_URL="http://127.0.0.1:9/v1", PROVIDER_MAX_RETRIES="0",
               PROVIDER_TIMEOUT_SECONDS="2")
    api = await make_api()
    admin = await api.admin_token()
    body = assert_error(await api.get(SERVER_TYPES.format("hetzner"), token=admin), 400)
    assert body["message"].startswith("Failed to fetch server types: ")
