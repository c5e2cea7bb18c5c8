"""Servers the provider made although nobody recorded them are found by their `decabill-item` label and
either deleted or adopted, so none keeps running (and costing) unseen:

* a create call that failed made the server anyway (the answer was lost to a timeout, or a retried request
  was refused because the first one took the name): the order ends with its error, the server is deleted —
  at once, or by the recovery job when it turns up late or the provider cannot be asked;
* the expiration job ends a subscription whose order a crash interrupted: the unrecorded server is deleted
  and the subscription ends unbilled;
* a backorder retry that died mid-provisioning: the next retry adopts the server instead of creating a
  second one.

Calls are made to fail or stall at the provider fakes; crashes are cancelled tasks (see test_order_recovery)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from structlog.testing import capture_logs

from decabill.providers.digitalocean import DigitalOceanProvider
from decabill.providers.hetzner import HetznerProvider
from decabill.subscriptions import backorders, expiration
from decabill.tenancy import bound_tenant
from models.subscriptions import Backorder, Subscription, SubscriptionItem
from tests.helpers import assert_error
from tests.jobs.conftest import now, positions_of, update_row
from tests.jobs.test_backorder_race import _server_creations, _waiting_backorder
from tests.jobs.test_order_recovery import (
    STALE,
    _bill_first_day,
    _crash,
    _crashed_order,
    _run_job,
    _stalled,
    read_timeout,
    timed_out_after_creating,
)
from tests.subscriptions.conftest import digitalocean_plan, hetzner_plan, only_item, order

TIMED_OUT = "Failed to provision server: Read timed out. (read timeout=30)"


def _servers(fake_cloud) -> dict:
    return {**fake_cloud.hetzner.servers, **fake_cloud.digitalocean.droplets}


async def _only_subscription(cloud, customer: str) -> tuple[dict, dict]:
    [subscription] = (await cloud.get("/subscriptions", token=customer)).json()
    return subscription, await only_item(cloud, customer, subscription["id"])


# --- a failed create call that made the server anyway ----------------------------------------------------------


@pytest.mark.parametrize("provider", [HetznerProvider, DigitalOceanProvider])
async def test_a_server_made_although_the_create_call_timed_out_is_deleted(cloud, admin, customer, fake_cloud,
                                                                           provider):
    plan = await (hetzner_plan if provider is HetznerProvider else digitalocean_plan)(cloud, admin)
    with pytest.MonkeyPatch.context() as patch, capture_logs() as logs:
        patch.setattr(provider, "create_server", timed_out_after_creating(provider))
        assert_error(await cloud.post("/subscriptions", token=customer, json={"planId": plan["id"]}), 400, TIMED_OUT)

    assert _servers(fake_cloud) == {}  # made, found by its label, deleted
    assert [e["item_id"] for e in logs if e["event"] == "subscriptions.stray_server_deleted"] != []
    subscription, item = await _only_subscription(cloud, customer)
    assert subscription["status"] == "canceled" and subscription["nextBillingAt"] is None
    # No answer came: the provider may still be working on the request. The hostname stays reserved until
    # the recovery job has looked again after the grace period.
    assert item["provisioningStatus"] == "failed" and item["hostname"]
    assert await _run_job() == {}
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {item["id"]: "cleaned"}
    assert (await only_item(cloud, customer, subscription["id"])).get("hostname") is None
    assert _servers(fake_cloud) == {} and fake_cloud.cloudflare.records == {}
    assert await positions_of(subscription["id"]) == []


async def test_a_server_the_provider_finishes_after_the_timeout_is_deleted_by_the_recovery_job(cloud, admin, customer,
                                                                                                fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    create, late = HetznerProvider.create_server, []

    async def timing_out(self, request):  # the request is still being worked on when the client gives up
        late.append((self, request))
        raise read_timeout(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HetznerProvider, "create_server", timing_out)
        assert_error(await cloud.post("/subscriptions", token=customer, json={"planId": plan["id"]}), 400)
    [(provider, request)] = late
    await create(provider, request)  # ... and the provider finishes it after the order's search
    subscription, item = await _only_subscription(cloud, customer)
    [server] = fake_cloud.hetzner.servers.values()
    assert server["labels"]["decabill-item"] == item["id"] and server["name"] == item["hostname"]

    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {item["id"]: "cleaned"}
    assert fake_cloud.hetzner.servers == {}
    assert (await only_item(cloud, customer, subscription["id"])).get("hostname") is None


async def test_a_retried_create_refused_for_the_name_its_first_try_took_deletes_that_server(cloud, admin, customer,
                                                                                           fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    create = HetznerProvider.create_server

    async def answer_lost_then_retried(self, request):
        await create(self, request)  # made; the answer never arrives
        return await create(self, request)  # the retry: Hetzner refuses the name that is taken now

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HetznerProvider, "create_server", answer_lost_then_retried)
        assert_error(await cloud.post("/subscriptions", token=customer, json={"planId": plan["id"]}), 400,
                     "Failed to provision server: server name is already used")

    assert fake_cloud.hetzner.servers == {}
    subscription, item = await _only_subscription(cloud, customer)
    assert subscription["status"] == "canceled" and item["provisioningStatus"] == "failed"
    assert item.get("hostname") is None  # the provider answered and the search worked: nothing can turn up
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {}


async def test_a_failed_search_leaves_the_stray_to_the_recovery_job(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    with pytest.MonkeyPatch.context() as patch, capture_logs() as logs:
        patch.setattr(HetznerProvider, "create_server", timed_out_after_creating(HetznerProvider))
        fake_cloud.hetzner.fail_next("service_error", 503, "try later", method="GET", path="/servers")
        # the customer gets the create call's error, not the search's
        assert_error(await cloud.post("/subscriptions", token=customer, json={"planId": plan["id"]}), 400, TIMED_OUT)
    assert [e["event"] for e in logs if e["event"] == "subscriptions.stray_search_failed"] == [
        "subscriptions.stray_search_failed"]
    subscription, item = await _only_subscription(cloud, customer)
    assert subscription["status"] == "canceled" and len(fake_cloud.hetzner.servers) == 1
    with bound_tenant("default"):
        assert await expiration.due_for_expiration(100) == []  # the hostname of a failed item is the recovery job's
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {item["id"]: "cleaned"}
    assert fake_cloud.hetzner.servers == {}


async def test_a_failed_order_that_becomes_a_backorder_leaves_no_second_server(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HetznerProvider, "create_server", timed_out_after_creating(HetznerProvider))
        fake_cloud.hetzner.fail_next("service_error", 503, "try later", method="GET", path="/servers")  # the search
        subscription = await order(cloud, customer, plan["id"], autoBackorder=True)
    assert subscription["status"] == "pending_backorder"
    [stray] = fake_cloud.hetzner.servers.values()  # could not be deleted yet
    item = await only_item(cloud, customer, subscription["id"])
    assert item["provisioningStatus"] == "pending" and item["hostname"] == stray["name"]  # kept with the stray
    backorder = (await cloud.get("/backorders", token=customer)).json()[0]
    assert backorder["failureReason"] == TIMED_OUT

    retried = await cloud.post(f"/backorders/{backorder['id']}/retry", token=customer)
    assert retried.status_code == 200 and retried.json()["status"] == "fulfilled"
    [server] = fake_cloud.hetzner.servers.values()
    assert server["id"] != stray["id"]  # the stray (made with keys that are gone) deleted, a new one made
    item = await only_item(cloud, customer, subscription["id"])
    assert item["provisioningStatus"] == "active" and item["hostname"] == server["name"]
    assert [r["name"] for r in fake_cloud.cloudflare.records.values()] == [f"{item['hostname']}.decabill.test"]


# --- the expiration job ending an order a crash interrupted -----------------------------------------------------


async def test_expiring_an_interrupted_order_deletes_its_unrecorded_server_and_bills_nothing(cloud, admin, customer,
                                                                                            fake_cloud):
    plan = await hetzner_plan(cloud, admin, billingIntervalType="day", billingIntervalValue=1, cancelAtPeriodEnd=False)
    subscription, item = await _crashed_order(cloud, customer, plan["id"], HetznerProvider, server_created=True,
                                              age=dt.timedelta(minutes=1))  # the recovery job has not got to it
    await _bill_first_day(subscription["id"])
    canceled = await cloud.post(f"/subscriptions/{subscription['id']}/cancel", token=customer)
    assert canceled.json()["status"] == "pending_cancel"
    await update_row(Subscription, subscription["id"], cancel_effective_at=now() - dt.timedelta(seconds=1))

    sid = uuid.UUID(subscription["id"])
    fake_cloud.hetzner.fail_next("service_error", 503, "try later", method="GET", path="/servers")
    with bound_tenant("default"):
        assert await expiration.expire_subscription(sid) == "canceled"
        assert await expiration.due_for_expiration(100) == []
    assert (await cloud.get(f"/subscriptions/{subscription['id']}", token=customer)).json()["status"] == "canceled"
    shown = await only_item(cloud, customer, subscription["id"])
    assert shown["provisioningStatus"] == "failed" and shown["hostname"] == item["hostname"]  # the search failed
    assert await positions_of(subscription["id"]) == []  # never delivered: no final period, the first one withdrawn
    assert len(fake_cloud.hetzner.servers) == 1

    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {item["id"]: "cleaned"}
    assert fake_cloud.hetzner.servers == {}
    assert (await only_item(cloud, customer, subscription["id"])).get("hostname") is None


async def test_expiry_deletes_every_server_labelled_with_the_item(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin, cancelAtPeriodEnd=False)
    subscription, item = await _crashed_order(cloud, customer, plan["id"], HetznerProvider, server_created=True,
                                              age=dt.timedelta(minutes=1))
    await cloud.post(f"/subscriptions/{subscription['id']}/cancel", token=customer)
    await update_row(Subscription, subscription["id"], cancel_effective_at=now() - dt.timedelta(seconds=1))
    with bound_tenant("default"):
        assert await expiration.expire_subscription(uuid.UUID(subscription["id"])) == "canceled"
    assert fake_cloud.hetzner.servers == {}
    shown = await only_item(cloud, customer, subscription["id"])
    assert shown["provisioningStatus"] == "failed" and shown.get("hostname") is None
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {}


# --- a backorder retry that died mid-provisioning ----------------------------------------------------------------


async def _retry(backorder_id: str) -> asyncio.Task:
    with bound_tenant("default"):
        return asyncio.create_task(backorders.retry_due_backorder(uuid.UUID(backorder_id)))


async def _make_due(backorder_id: str) -> None:
    await update_row(Backorder, backorder_id, retry_after=now() - dt.timedelta(seconds=1))


@pytest.mark.parametrize("stall", ["create_server", "server_info"])
async def test_the_next_retry_adopts_the_server_a_crashed_retry_made(cloud, admin, customer, fake_cloud, stall):
    """`create_server`: died before the answer was stored; `server_info`: after, waiting for the IPv4."""
    waiting, backorder = await _waiting_backorder(cloud, admin, customer, fake_cloud)
    fake_cloud.hetzner.requests.clear()
    async with _stalled(HetznerProvider, stall, call_through=stall == "create_server") as reached:
        await _crash(await _retry(backorder["id"]), reached)
    [server] = fake_cloud.hetzner.servers.values()
    item = await only_item(cloud, customer, waiting["id"])
    assert item["hostname"] == server["name"] and fake_cloud.cloudflare.records == {}
    assert (await cloud.get(f"/subscriptions/{waiting['id']}", token=customer)).json()["status"] == "pending_backorder"
    await _make_due(backorder["id"])

    with bound_tenant("default"):
        assert await backorders.retry_due_backorder(uuid.UUID(backorder["id"])) == "fulfilled"

    assert list(fake_cloud.hetzner.servers.values()) == [server] and _server_creations(fake_cloud) == 1
    item = await only_item(cloud, customer, waiting["id"])
    assert item["provisioningStatus"] == "active" and item["hostname"] == server["name"]
    assert [(r["name"], r["content"]) for r in fake_cloud.cloudflare.records.values()] == [
        (f"{server['name']}.decabill.test", server["public_net"]["ipv4"]["ip"])]
    subscription = (await cloud.get(f"/subscriptions/{waiting['id']}", token=customer)).json()
    assert subscription["status"] == "active" and subscription["currentPeriodStart"] is not None
    info = await cloud.get(f"/subscriptions/{waiting['id']}/items/{item['id']}/server-info", token=customer)
    assert info.status_code == 200
