"""The whole order flow through HTTP against the Hetzner, DigitalOcean and Cloudflare fakes
(behavior.md part A §6.3–6.8, D4, D5, D23, D24)."""

from __future__ import annotations

import datetime as dt
import re

from decabill.subscriptions import expiration
from decabill.tenancy import bound_tenant
from tests.catalog.conftest import create_plan
from tests.helpers import assert_error
from tests.subscriptions.conftest import digitalocean_plan, hetzner_plan, manual_plan, only_item, order

HOSTNAME = re.compile(r"^[a-z]+-[a-z]+-[a-z0-9]{5}$")


def _iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_hetzner_order_provisions_a_server_with_hostname_and_a_record(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"])

    assert subscription["status"] == "active"
    assert re.fullmatch(r"SUB-\d{6}", subscription["number"])
    start, end = _iso(subscription["currentPeriodStart"]), _iso(subscription["currentPeriodEnd"])
    assert subscription["nextBillingAt"] == subscription["currentPeriodEnd"]
    assert end.day == 1 and end > start  # month plan without billing day: periods end on the 1st
    assert subscription["cancelEffectiveAt"] is None

    item = await only_item(cloud, customer, subscription["id"])
    assert item["provisioningStatus"] == "active" and item["service"] == "controller"
    assert HOSTNAME.match(item["hostname"])
    assert set(item) == {"id", "subscriptionId", "serviceTypeId", "provisioningStatus", "hostname", "service"}

    servers = list(fake_cloud.hetzner.servers.values())
    assert len(servers) == 1
    server = servers[0]
    assert server["name"] == item["hostname"]
    assert server["server_type"]["name"] == "cx22" and server["location"]["name"] == "fsn1"
    assert server["_user_data"].startswith("#!/bin/bash")
    assert "ssh-ed25519 " in server["_user_data"]
    # The A record at Cloudflare names <hostname>.<DNS_BASE_DOMAIN> and the server's IPv4.
    records = list(fake_cloud.cloudflare.records.values())
    assert [(r["type"], r["name"], r["content"]) for r in records] == [
        ("A", f"{item['hostname']}.decabill.test", server["public_net"]["ipv4"]["ip"])]

    # The provider's server id is stored on the item but never returned.
    for path in (f"/subscriptions/{subscription['id']}", f"/subscriptions/{subscription['id']}/items", "/subscriptions"):
        assert str(server["id"]) not in (await cloud.get(path, token=customer)).text

    info = await cloud.get(f"/subscriptions/{subscription['id']}/items/{item['id']}/server-info", token=customer)
    assert info.status_code == 200, info.text
    assert info.json() == {
        "name": item["hostname"], "publicIp": server["public_net"]["ipv4"]["ip"], "privateIp": None,
        "status": "running", "metadata": {"location": "fsn1", "serverType": "cx22", "provider": "hetzner"},
        "hostname": item["hostname"], "hostnameFqdn": f"{item['hostname']}.decabill.test",
    }
    assert str(server["id"]) not in info.text


async def test_power_actions_reach_the_provider(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"])
    item = await only_item(cloud, customer, subscription["id"])
    server_id = next(iter(fake_cloud.hetzner.servers))
    base = f"/subscriptions/{subscription['id']}/items/{item['id']}"

    fake_cloud.hetzner.requests.clear()
    for action, status in (("stop", "off"), ("start", "running"), ("restart", "running")):
        response = await cloud.post(f"{base}/actions/{action}", token=customer)
        assert response.status_code == 200 and response.json() == {"success": True}
        assert fake_cloud.hetzner.servers[server_id]["status"] == status
    posted = [r["path"] for r in fake_cloud.hetzner.requests if r["method"] == "POST"]
    assert posted == [f"/v1/servers/{server_id}/actions/{a}" for a in ("poweroff", "poweron", "reboot")]

    info = await cloud.get(f"{base}/server-info", token=customer)
    assert info.json()["status"] == "running"


async def test_digitalocean_order_waits_for_the_ip_then_creates_the_record(cloud, admin, customer, fake_cloud):
    fake_cloud.digitalocean.new_polls = 2  # the droplet has no IPv4 for its first two reads
    plan = await digitalocean_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"], requestedConfig={"authenticationMethod": "users"})

    item = await only_item(cloud, customer, subscription["id"])
    assert item["provisioningStatus"] == "active" and item["service"] == "manager"
    droplet = next(iter(fake_cloud.digitalocean.droplets.values()))
    assert droplet["name"] == item["hostname"] and droplet["size_slug"] == "s-1vcpu-1gb"
    assert droplet["region"]["slug"] == "fra1"
    # A manager never runs the `users` mode: coerced to api-key (behavior.md §6.3 step 7).
    assert "AUTHENTICATION_METHOD='api-key'" in droplet["_user_data"]
    public = next(n["ip_address"] for n in droplet["networks"]["v4"] if n["type"] == "public")
    assert [r["content"] for r in fake_cloud.cloudflare.records.values()] == [public]

    base = f"/subscriptions/{subscription['id']}/items/{item['id']}"
    info = (await cloud.get(f"{base}/server-info", token=customer)).json()
    assert info["publicIp"] == public and info["privateIp"].startswith("10.110.")
    assert info["metadata"] == {"region": "fra1", "regionName": "Frankfurt 1", "provider": "digital-ocean"}
    for action, kind in (("stop", "power_off"), ("start", "power_on"), ("restart", "reboot")):
        assert (await cloud.post(f"{base}/actions/{action}", token=customer)).status_code == 200
        assert fake_cloud.digitalocean.requests[-1]["json"] == {"type": kind}


async def test_without_dns_configuration_no_record_is_made_and_the_order_still_succeeds(cloud, env, make_api, admin,
                                                                                      customer, fake_cloud):
    env.update(CLOUDFLARE_API_TOKEN=None)
    api = await make_api()
    plan = await hetzner_plan(api, admin)
    subscription = await order(api, customer, plan["id"])
    assert (await only_item(api, customer, subscription["id"]))["provisioningStatus"] == "active"
    assert fake_cloud.cloudflare.requests == []


async def test_a_cloudflare_failure_is_logged_not_fatal(cloud, admin, customer, fake_cloud):
    fake_cloud.cloudflare.fail_next(500, 10000, "internal error")
    plan = await hetzner_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"])
    assert (await only_item(cloud, customer, subscription["id"]))["provisioningStatus"] == "active"
    assert fake_cloud.cloudflare.records == {}


async def test_a_product_without_provider_is_active_at_once_without_a_server(cloud, admin, customer, fake_cloud):
    plan = await manual_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"], autoBackorder=True)
    assert subscription["status"] == "active"
    item = await only_item(cloud, customer, subscription["id"])
    assert item["hostname"] is None or "hostname" not in item
    assert (await cloud.get("/backorders", token=customer)).json() == []
    assert fake_cloud.hetzner.servers == {} and fake_cloud.digitalocean.droplets == {}
    assert_error(await cloud.get(f"/subscriptions/{subscription['id']}/items/{item['id']}/server-info", token=customer),
                 400, "Service is not provisioned yet")


async def test_no_capacity_without_auto_backorder_is_400_and_creates_nothing(cloud, admin, customer, fake_cloud):
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    plan = await hetzner_plan(cloud, admin)
    assert_error(await cloud.post("/subscriptions", token=customer, json={"planId": plan["id"]}), 400,
                 "Server type temporarily out of capacity in region")
    assert (await cloud.get("/subscriptions", token=customer)).json() == []
    assert (await cloud.get("/backorders", token=customer)).json() == []
    assert fake_cloud.hetzner.servers == {}


async def test_no_capacity_with_auto_backorder_waits_and_the_retry_job_fulfils_it_once(cloud, admin, customer, fake_cloud):
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    plan = await hetzner_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"], autoBackorder=True,
                               requestedConfig={"smtp": {"password": "smtp-secret-1"}})
    assert subscription["status"] == "pending_backorder"
    assert subscription["currentPeriodStart"] is None and subscription["nextBillingAt"] is None

    backorders = (await cloud.get("/backorders", token=customer)).json()
    assert len(backorders) == 1
    backorder = backorders[0]
    assert backorder["status"] == "pending" and backorder["planId"] == plan["id"]
    assert backorder["subscriptionId"] == subscription["id"]
    assert backorder["failureReason"] == "Server type temporarily out of capacity in region"
    assert sorted(backorder["preferredAlternatives"]["availableTypes"]) == ["cax11", "cpx11", "cx32"]
    assert backorder["requestedConfigSnapshot"] == {"smtp": {"password": "[redacted]"}}
    assert fake_cloud.hetzner.servers == {}

    from decabill.subscriptions import backorders as service

    with bound_tenant("default"):
        assert await service.retry_due_backorder(_uuid(backorder["id"])) == "retrying"  # still no capacity
    retried = (await cloud.get("/backorders", token=customer)).json()[0]
    assert retried["status"] == "retrying" and retried["retryAfter"] is not None

    fake_cloud.hetzner.capacity.clear()
    with bound_tenant("default"):
        # Not due yet (backing off): the job leaves it alone ...
        assert await service.retry_due_backorder(_uuid(backorder["id"])) == "retrying"
        await _make_due(backorder["id"])
        assert await service.retry_due_backorder(_uuid(backorder["id"])) == "fulfilled"
        assert await service.retry_due_backorder(_uuid(backorder["id"])) == "fulfilled"  # a second delivery: no-op

    assert len(fake_cloud.hetzner.servers) == 1
    fulfilled = (await cloud.get(f"/subscriptions/{subscription['id']}", token=customer)).json()
    assert fulfilled["status"] == "active" and fulfilled["number"] == subscription["number"]  # the same subscription (D4)
    assert fulfilled["currentPeriodStart"] is not None and fulfilled["nextBillingAt"] is not None
    assert (await only_item(cloud, customer, subscription["id"]))["provisioningStatus"] == "active"
    assert (await cloud.get("/backorders", token=customer)).json()[0]["status"] == "fulfilled"
    assert len((await cloud.get("/subscriptions", token=customer)).json()) == 1
    # A manual retry of a fulfilled backorder answers with it and creates nothing.
    again = await cloud.post(f"/backorders/{backorder['id']}/retry", token=customer)
    assert again.status_code == 200 and again.json()["status"] == "fulfilled"
    assert len(fake_cloud.hetzner.servers) == 1


async def test_manual_retry_and_cancel_of_a_backorder(cloud, admin, customer, fake_cloud):
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    plan = await hetzner_plan(cloud, admin)
    waiting = await order(cloud, customer, plan["id"], autoBackorder=True)
    backorder = (await cloud.get("/backorders", token=customer)).json()[0]

    still = await cloud.post(f"/backorders/{backorder['id']}/retry", token=customer, json={"reason": "please"})
    assert still.status_code == 200 and still.json()["status"] == "retrying"

    cancelled = await cloud.post(f"/backorders/{backorder['id']}/cancel", token=customer)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    ended = (await cloud.get(f"/subscriptions/{waiting['id']}", token=customer)).json()
    assert ended["status"] == "canceled" and ended["cancelEffectiveAt"] is not None
    assert (await cloud.post(f"/backorders/{backorder['id']}/cancel", token=customer)).json()["status"] == "cancelled"
    fake_cloud.hetzner.capacity.clear()
    assert_error(await cloud.post(f"/backorders/{backorder['id']}/retry", token=customer), 400,
                 "Backorder is cancelled and can no longer be retried")
    assert fake_cloud.hetzner.servers == {}


async def test_manual_retry_with_capacity_fulfils_and_an_admin_may_retry_others(cloud, admin, customer, fake_cloud):
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    plan = await hetzner_plan(cloud, admin)
    waiting = await order(cloud, customer, plan["id"], autoBackorder=True)
    backorder = (await cloud.get("/backorders", token=customer)).json()[0]
    fake_cloud.hetzner.capacity.clear()

    done = await cloud.post(f"/backorders/{backorder['id']}/retry", token=admin)
    assert done.status_code == 200 and done.json()["status"] == "fulfilled"
    assert (await cloud.get(f"/subscriptions/{waiting['id']}", token=customer)).json()["status"] == "active"
    assert len(fake_cloud.hetzner.servers) == 1


async def test_cancelling_a_waiting_subscription_cancels_its_backorder(cloud, admin, customer, fake_cloud):
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    plan = await hetzner_plan(cloud, admin)
    waiting = await order(cloud, customer, plan["id"], autoBackorder=True)
    ended = await cloud.post(f"/subscriptions/{waiting['id']}/cancel", token=customer)
    assert ended.status_code == 200 and ended.json()["status"] == "canceled"
    assert (await cloud.get("/backorders", token=customer)).json()[0]["status"] == "cancelled"
    assert_error(await cloud.post(f"/subscriptions/{waiting['id']}/cancel", token=customer), 400,
                 "Subscription is already canceled")


async def test_provisioning_failure_with_auto_backorder_becomes_a_backorder(cloud, admin, customer, fake_cloud):
    # Capacity is reported, but the create call then fails (the sold-out answer races the check).
    fake_cloud.hetzner.fail_next("resource_unavailable", 412, "server type unavailable", method="POST", path="/servers")
    plan = await hetzner_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"], autoBackorder=True)
    assert subscription["status"] == "pending_backorder" and subscription["currentPeriodStart"] is None
    backorder = (await cloud.get("/backorders", token=customer)).json()[0]
    assert backorder["failureReason"] == "Failed to provision server: server type unavailable"
    item = await only_item(cloud, customer, subscription["id"])
    assert item["provisioningStatus"] == "pending" and item.get("hostname") is None


async def test_provisioning_failure_without_auto_backorder_is_400_and_ends_the_order(cloud, admin, customer, fake_cloud):
    fake_cloud.hetzner.fail_next("service_error", 503, "try later", method="POST", path="/servers")
    plan = await hetzner_plan(cloud, admin)
    assert_error(await cloud.post("/subscriptions", token=customer, json={"planId": plan["id"]}), 400,
                 "Failed to provision server: try later")
    [ended] = (await cloud.get("/subscriptions", token=customer)).json()
    assert ended["status"] == "canceled" and ended["nextBillingAt"] is None
    item = await only_item(cloud, customer, ended["id"])
    assert item["provisioningStatus"] == "failed" and item.get("hostname") is None
    assert (await cloud.get("/backorders", token=customer)).json() == []


async def test_cancel_resume_and_expiry(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin, billingIntervalType="day", billingIntervalValue=1, cancelAtPeriodEnd=True)
    subscription = await order(cloud, customer, plan["id"])
    item = await only_item(cloud, customer, subscription["id"])
    path = f"/subscriptions/{subscription['id']}"

    assert_error(await cloud.post(f"{path}/resume", token=customer), 400, "Subscription is not pending cancel")
    canceled = await cloud.post(f"{path}/cancel", token=customer, json={"reason": "moving on"})
    assert canceled.status_code == 200
    body = canceled.json()
    # D5: at period end (noticeDays 0): the current period's end.
    assert body["status"] == "pending_cancel" and body["cancelEffectiveAt"] == subscription["currentPeriodEnd"]
    assert body["cancelRequestedAt"] is not None
    assert_error(await cloud.post(f"{path}/cancel", token=customer), 400)  # repeating a cancel (D5)

    resumed = await cloud.post(f"{path}/resume", token=customer)
    assert resumed.status_code == 200
    assert resumed.json()["status"] == "active" and resumed.json()["cancelEffectiveAt"] is None
    assert resumed.json()["resumedAt"] is not None

    assert (await cloud.post(f"{path}/cancel", token=customer)).json()["status"] == "pending_cancel"
    with bound_tenant("default"):
        assert await expiration.expire_subscription(_uuid(subscription["id"])) == "not_due"
        await _set(subscription["id"], cancel_effective_at=_now() - dt.timedelta(seconds=1))
        assert await expiration.due_for_expiration(100) == [_uuid(subscription["id"])]
        assert await expiration.expire_subscription(_uuid(subscription["id"])) == "canceled"
        assert await expiration.expire_subscription(_uuid(subscription["id"])) == "not_due"  # a repeat: nothing

    ended = (await cloud.get(path, token=customer)).json()
    assert ended["status"] == "canceled"
    assert fake_cloud.hetzner.servers == {}  # deprovisioned
    assert fake_cloud.cloudflare.records == {}  # A record deleted
    assert_error(await cloud.post(f"{path}/resume", token=customer), 400, "Subscription is not pending cancel")
    assert_error(await cloud.post(f"{path}/cancel", token=customer), 400, "Subscription is already canceled")
    assert_error(await cloud.get(f"{path}/items/{item['id']}/server-info", token=customer), 400)
    assert (await only_item(cloud, customer, subscription["id"])).get("hostname") is None  # released


async def test_d5_minimum_commitment_notice_and_immediate_cancellation(cloud, admin, customer):
    committed = await manual_plan(cloud, admin, minCommitmentDays=30)
    subscription = await order(cloud, customer, committed["id"])
    body = assert_error(await cloud.post(f"/subscriptions/{subscription['id']}/cancel", token=customer), 400)
    assert body["message"].startswith("Minimum commitment not yet reached")

    service_type_id = committed["serviceTypeId"]
    now_plan = await create_plan(cloud, admin, service_type_id, name="Now", basePrice="1", cancelAtPeriodEnd=False)
    now_sub = await order(cloud, customer, now_plan["id"])
    ended = (await cloud.post(f"/subscriptions/{now_sub['id']}/cancel", token=customer)).json()
    assert ended["status"] == "pending_cancel"
    assert abs(_iso(ended["cancelEffectiveAt"]) - _now()) < dt.timedelta(minutes=1)

    noticed = await create_plan(cloud, admin, service_type_id, name="Notice", basePrice="1", billingIntervalType="day",
                                billingIntervalValue=7, noticeDays=10)
    sub = await order(cloud, customer, noticed["id"])
    body = (await cloud.post(f"/subscriptions/{sub['id']}/cancel", token=customer)).json()
    # periods of 7 days: the first period end at least 10 days away is the end of the second period
    assert _iso(body["cancelEffectiveAt"]) == _iso(sub["currentPeriodEnd"]) + dt.timedelta(days=7)


# --- helpers ------------------------------------------------------------------------------------------------


def _uuid(value: str):
    import uuid

    return uuid.UUID(value)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def _set(subscription_id: str, **values) -> None:
    from decabill import db
    from models.subscriptions import Subscription

    async with db.transaction() as session:
        subscription = await session.get(Subscription, _uuid(subscription_id))
        for name, value in values.items():
            setattr(subscription, name, value)


async def _make_due(backorder_id: str) -> None:
    from decabill import db
    from models.subscriptions import Backorder

    async with db.transaction() as session:
        backorder = await session.get(Backorder, _uuid(backorder_id))
        backorder.retry_after = _now() - dt.timedelta(seconds=1)
