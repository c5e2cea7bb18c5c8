"""Orders a crash interrupted between inserting the subscription and recording its server are finished by
the recovery job (decabill/subscriptions/recovery.py): the server is adopted when the provider has one
labelled with the item's id, otherwise the order ends unbilled. Each item is recovered once, however many
runs race; an order still in progress is never touched. The same job ends an order whose create call
failed when the process died before ending it (a server the provider made anyway is deleted), and runs the
steps after the create call again when the process died after recording the server.

The crash is real: the order runs through the service layer until a call (to the provider, to Cloudflare,
or ending the order) that never returns (after it did its work, or before); then the task is cancelled, as
a process killed on deploy would stop there. The item's age is then moved past the grace period."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from contextlib import asynccontextmanager

import pytest
import requests
from azure.core.exceptions import ServiceResponseTimeoutError
from structlog.testing import capture_logs

from decabill.config import get_settings
from decabill.identity.auth import authenticate
from decabill.providers import ProviderRequestFailed
from decabill.providers.digitalocean import DigitalOceanProvider
from decabill.providers.hetzner import HetznerProvider
from decabill.subscriptions import billing, dns, recovery, service, tasks
from decabill.tenancy import bound_tenant
from models.subscriptions import Subscription, SubscriptionItem
from tests.helpers import drain
from tests.jobs.conftest import load_row, now, positions_of, update_row
from tests.jobs.test_backorder_race import _waiting_backorder
from tests.subscriptions.conftest import digitalocean_plan, hetzner_plan, only_item

STALE = dt.timedelta(minutes=11)  # the default grace period is 10 minutes


@asynccontextmanager
async def _order_in_flight(customer: str, plan_id: str, provider: type, *, server_created: bool):
    """Start an order whose create call hangs (after the provider created the server, or before the request
    reached it); yields (the order task, an event that lets the call answer) once the call is made."""
    reached, answer = asyncio.Event(), asyncio.Event()
    create = provider.create_server

    async def hanging(self, request):
        server = await create(self, request) if server_created else None
        reached.set()
        await answer.wait()
        return server

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(provider, "create_server", hanging)
        ordering = await start_order(customer, plan_id)
        await reached.wait()
        try:
            yield ordering, answer
        finally:
            if not answer.is_set():
                ordering.cancel()


@asynccontextmanager
async def _stalled(owner, name: str, *, call_through: bool):
    """`owner.name` (a function, or a method of a provider class) never returns: after running the original
    (`call_through`) or before; yields an event set when it is reached."""
    reached, original = asyncio.Event(), getattr(owner, name)

    async def stalled(*args, **kwargs):
        if call_through:
            await original(*args, **kwargs)
        reached.set()
        await asyncio.Event().wait()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(owner, name, stalled)
        yield reached


async def _crash(task: asyncio.Task, reached: asyncio.Event) -> None:
    """The process dies once the stalled call is reached (a task that ends without reaching it fails the test)."""
    waiting = asyncio.ensure_future(reached.wait())
    await asyncio.wait({task, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    task.cancel()
    assert reached.is_set(), f"the stalled call was never reached: {task}"
    with pytest.raises(asyncio.CancelledError):
        await task


async def start_order(customer: str, plan_id: str, **options) -> asyncio.Task:
    """`POST /subscriptions` as the service layer runs it, in a task that a test can kill."""
    with bound_tenant("default"):
        principal = await authenticate(f"Bearer {customer}")
        return asyncio.create_task(service.create_subscription(principal, uuid.UUID(plan_id), **options))


def read_timeout(provider) -> Exception:
    """What `provider` raises when its client library gives up waiting for the answer of a create call."""
    message = "Read timed out. (read timeout=30)"
    if isinstance(provider, DigitalOceanProvider):
        return provider._translate("provision server", ServiceResponseTimeoutError(message))
    return provider._translate("provision server", requests.ReadTimeout(message))


def timed_out_after_creating(provider: type):
    """`create_server` of `provider` making the server, then failing as its client does when the answer does
    not come in time."""
    create = provider.create_server

    async def create_server(self, request):
        await create(self, request)
        raise read_timeout(self)

    return create_server


async def _crashed_order(cloud, customer: str, plan_id: str, provider: type, *, server_created: bool,
                         age: dt.timedelta = STALE) -> tuple[dict, dict]:
    """An order killed during its create call, its item untouched for `age`: (subscription, item) as shown
    by the API."""
    async with _order_in_flight(customer, plan_id, provider, server_created=server_created) as (ordering, _answer):
        ordering.cancel()  # the process dies while waiting for the provider
        with pytest.raises(asyncio.CancelledError):
            await ordering
    subscriptions = (await cloud.get("/subscriptions", token=customer)).json()
    subscription = subscriptions[0]  # the newest
    item = await only_item(cloud, customer, subscription["id"])
    assert subscription["status"] == "active" and item["provisioningStatus"] == "pending"  # billed, not delivered
    await update_row(SubscriptionItem, item["id"], updated_at=now() - age)
    return subscription, item


async def _run_job() -> dict[str, str]:
    """One run of the job as the scheduler does it, units run in turn: {item id: outcome}."""
    with bound_tenant("default"):
        return {str(item_id): await recovery.recover_order(item_id) for item_id in await recovery.stale_orders(100)}


async def test_a_server_created_but_never_recorded_is_adopted(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    subscription, item = await _crashed_order(cloud, customer, plan["id"], HetznerProvider, server_created=True)
    [server] = fake_cloud.hetzner.servers.values()
    assert server["labels"]["decabill-item"] == item["id"]
    assert fake_cloud.cloudflare.records == {}

    with capture_logs() as logs:
        assert await tasks.recover_stale_orders.original_func() == 1  # the coordinator, as the scheduler sends it
        await drain()

    item = await only_item(cloud, customer, subscription["id"])
    assert item["provisioningStatus"] == "active" and item["hostname"] == server["name"]
    assert list(fake_cloud.hetzner.servers.values()) == [server]  # exactly the one server
    ip = server["public_net"]["ipv4"]["ip"]
    assert [(r["name"], r["content"]) for r in fake_cloud.cloudflare.records.values()] == [
        (f"{item['hostname']}.decabill.test", ip)]  # the step the order never reached
    info = await cloud.get(f"/subscriptions/{subscription['id']}/items/{item['id']}/server-info", token=customer)
    assert info.status_code == 200 and info.json()["publicIp"] == ip
    assert (await cloud.get(f"/subscriptions/{subscription['id']}", token=customer)).json()["status"] == "active"
    recovered = [(e["outcome"], e["item_id"]) for e in logs if e["event"] == "subscriptions.order_recovered"]
    assert recovered == [("adopted", item["id"])]
    assert await _run_job() == {}  # recovered: nothing left


async def test_an_order_without_server_ends_unbilled(cloud, admin, customer, fake_cloud):
    plan = await digitalocean_plan(cloud, admin, billingIntervalType="day", billingIntervalValue=1)
    subscription, item = await _crashed_order(cloud, customer, plan["id"], DigitalOceanProvider, server_created=False)
    assert item["hostname"]  # reserved before the create call
    # The job ran late (the scheduler was down for a day): the billing job has charged the first period meanwhile.
    start = now() - dt.timedelta(days=1, minutes=5)
    await update_row(Subscription, subscription["id"], current_period_start=start,
                     current_period_end=start + dt.timedelta(days=1), next_billing_at=start + dt.timedelta(days=1))
    with bound_tenant("default"):
        assert await billing.bill_due_period(uuid.UUID(subscription["id"])) is not None

    assert await _run_job() == {item["id"]: "ended"}

    ended = (await cloud.get(f"/subscriptions/{subscription['id']}", token=customer)).json()
    assert ended["status"] == "canceled" and ended["nextBillingAt"] is None
    item = await only_item(cloud, customer, subscription["id"])
    assert item["provisioningStatus"] == "failed" and item.get("hostname") is None
    assert await positions_of(subscription["id"]) == []  # never billed
    assert fake_cloud.digitalocean.droplets == {} and fake_cloud.cloudflare.records == {}
    with bound_tenant("default"):
        assert await billing.due_for_billing(100) == []
        assert await recovery.recover_order(uuid.UUID(item["id"])) == "not_due"  # a late re-delivery


async def test_a_provider_that_cannot_be_asked_leaves_the_order_for_the_next_run(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    subscription, item = await _crashed_order(cloud, customer, plan["id"], HetznerProvider, server_created=True)
    fake_cloud.hetzner.fail_next("service_error", 503, "try later", method="GET", path="/servers")
    with bound_tenant("default"), pytest.raises(ProviderRequestFailed):
        await recovery.recover_order(uuid.UUID(item["id"]))  # logged as jobs.unit_failed by the task wrapper
    assert (await only_item(cloud, customer, subscription["id"]))["provisioningStatus"] == "pending"
    assert await _run_job() == {item["id"]: "adopted"}  # the lease was given back
    assert len(fake_cloud.hetzner.servers) == 1


async def test_concurrent_runs_recover_each_order_once(cloud, admin, customer, fake_cloud, monkeypatch):
    hetzner, ocean = await hetzner_plan(cloud, admin), await digitalocean_plan(cloud, admin)
    crashed = [
        await _crashed_order(cloud, customer, hetzner["id"], HetznerProvider, server_created=True),
        await _crashed_order(cloud, customer, ocean["id"], DigitalOceanProvider, server_created=True),
        await _crashed_order(cloud, customer, hetzner["id"], HetznerProvider, server_created=False),
    ]
    adopted, ended = {crashed[0][1]["id"], crashed[1][1]["id"]}, {crashed[2][1]["id"]}
    servers_before = {**fake_cloud.hetzner.servers, **fake_cloud.digitalocean.droplets}
    for provider in (HetznerProvider, DigitalOceanProvider):  # a slower provider keeps both runs overlapping
        async def slow(self, label, value, _find=provider.find_servers):
            await asyncio.sleep(0.05)
            return await _find(self, label, value)

        monkeypatch.setattr(provider, "find_servers", slow)

    with capture_logs() as logs:
        runs = await asyncio.gather(_run_job(), _run_job(), _run_job())

    outcomes: dict[str, list[str]] = {}
    for run in runs:
        for item_id, outcome in run.items():
            outcomes.setdefault(item_id, []).append(outcome)
    for item_id, seen in outcomes.items():
        done = [o for o in seen if o in ("adopted", "ended")]
        assert done == ["adopted" if item_id in adopted else "ended"], (item_id, seen)
        assert set(seen) - {"adopted", "ended"} <= {"busy", "not_due"}
    assert set(outcomes) == adopted | ended
    recovered = [e["item_id"] for e in logs if e["event"] == "subscriptions.order_recovered"]
    assert sorted(recovered) == sorted(adopted | ended)

    assert {**fake_cloud.hetzner.servers, **fake_cloud.digitalocean.droplets} == servers_before  # none added or lost
    assert len(fake_cloud.cloudflare.records) == 2  # one A record per adopted server
    for subscription, item in crashed:
        shown = await only_item(cloud, customer, subscription["id"])
        assert shown["provisioningStatus"] == ("active" if item["id"] in adopted else "failed")
    assert await _run_job() == {}


async def test_an_order_younger_than_the_grace_period_is_left_alone(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    _subscription, young = await _crashed_order(cloud, customer, plan["id"], HetznerProvider, server_created=True,
                                                age=dt.timedelta(minutes=5))
    assert await _run_job() == {}
    with bound_tenant("default"):
        assert await recovery.recover_order(uuid.UUID(young["id"])) == "not_due"  # a unit delivered anyway
    assert (await load_row(SubscriptionItem, young["id"])).provisioning_status == "pending"
    assert len(fake_cloud.hetzner.servers) == 1


async def test_an_order_in_progress_is_never_taken_for_a_crashed_one(cloud, admin, customer, fake_cloud, env):
    env.update(ORDER_RECOVERY_GRACE_MS="1")  # as short as it gets: twice the longest provider call (60 s here)
    plan = await hetzner_plan(cloud, admin)
    async with _order_in_flight(customer, plan["id"], HetznerProvider, server_created=True) as (ordering, answer):
        [subscription] = (await cloud.get("/subscriptions", token=customer)).json()
        item = await only_item(cloud, customer, subscription["id"])
        await update_row(SubscriptionItem, item["id"], updated_at=now() - dt.timedelta(seconds=59))
        assert await _run_job() == {}  # the create call is in flight
        answer.set()  # the provider answers after all
        await ordering
    item = await only_item(cloud, customer, subscription["id"])
    assert item["provisioningStatus"] == "active" and len(fake_cloud.hetzner.servers) == 1
    assert len(fake_cloud.cloudflare.records) == 1
    assert await _run_job() == {}


async def test_waiting_backorders_are_not_recovered(cloud, admin, customer, fake_cloud):
    waiting, _backorder = await _waiting_backorder(cloud, admin, customer, fake_cloud)  # its retries own it
    item = await only_item(cloud, customer, waiting["id"])
    await update_row(SubscriptionItem, item["id"], updated_at=now() - dt.timedelta(days=3))
    assert await _run_job() == {}
    assert (await only_item(cloud, customer, waiting["id"]))["provisioningStatus"] == "pending"


def test_the_settings_follow_the_job_setting_rules(env):
    env.update(ORDER_RECOVERY_GRACE_MS="abc", ORDER_RECOVERY_BATCH_SIZE="-5", ORDER_RECOVERY_INTERVAL_MS="2500")
    assert recovery.grace() == dt.timedelta(minutes=10)
    assert recovery.batch_size() == 100 and get_settings().order_recovery_interval_ms == 2500
    env.update(ORDER_RECOVERY_GRACE_MS="900000")
    assert recovery.grace() == dt.timedelta(minutes=15)
    env.update(ORDER_RECOVERY_GRACE_MS="1000", PROVIDER_TIMEOUT_SECONDS="20", PROVIDER_MAX_RETRIES="2")
    assert recovery.grace() == dt.timedelta(minutes=2)  # never below twice the longest provider call


# --- the order failed, then the process died before ending it ------------------------------------------------


async def _bill_first_day(subscription_id: str) -> None:
    """The recovery job ran late (the scheduler was down for a day): the billing job has charged the first
    period meanwhile."""
    start = now() - dt.timedelta(days=1, minutes=5)
    await update_row(Subscription, subscription_id, current_period_start=start,
                     current_period_end=start + dt.timedelta(days=1), next_billing_at=start + dt.timedelta(days=1))
    with bound_tenant("default"):
        assert await billing.bill_due_period(uuid.UUID(subscription_id)) is not None


async def test_a_refused_order_left_billed_by_a_crash_ends_unbilled(cloud, admin, customer, fake_cloud):
    plan = await digitalocean_plan(cloud, admin, billingIntervalType="day", billingIntervalValue=1)
    fake_cloud.digitalocean.fail_next("unprocessable_entity", 422, "Image is not available", method="POST",
                                      path="/droplets")
    async with _stalled(service, "end_failed_order", call_through=False) as reached:
        await _crash(await start_order(customer, plan["id"]), reached)  # dies before the order is ended
    [subscription] = (await cloud.get("/subscriptions", token=customer)).json()
    item = await only_item(cloud, customer, subscription["id"])
    assert subscription["status"] == "active" and item["provisioningStatus"] == "failed"  # billed, never delivered
    assert item.get("hostname") is None  # the provider refused and the search found nothing: settled at once
    await _bill_first_day(subscription["id"])
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)

    # No hostname is left to keep a failed search open with: the order waits until the provider can be asked.
    fake_cloud.digitalocean.fail_next("service_unavailable", 503, "try later", method="GET", path="/droplets")
    assert await _run_job() == {item["id"]: "deferred"}
    assert (await cloud.get(f"/subscriptions/{subscription['id']}", token=customer)).json()["status"] == "active"
    assert await _run_job() == {}
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {item["id"]: "ended"}

    ended = (await cloud.get(f"/subscriptions/{subscription['id']}", token=customer)).json()
    assert ended["status"] == "canceled" and ended["nextBillingAt"] is None
    assert (await only_item(cloud, customer, subscription["id"]))["provisioningStatus"] == "failed"
    assert await positions_of(subscription["id"]) == []  # never billed
    assert fake_cloud.digitalocean.droplets == {}
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {}


async def test_a_server_made_despite_a_timeout_is_deleted_when_the_crashed_order_is_ended(cloud, admin, customer,
                                                                                          fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HetznerProvider, "create_server", timed_out_after_creating(HetznerProvider))
        async with _stalled(HetznerProvider, "find_servers", call_through=False) as reached:
            await _crash(await start_order(customer, plan["id"]), reached)  # dies while looking for the server
    [subscription] = (await cloud.get("/subscriptions", token=customer)).json()
    item = await only_item(cloud, customer, subscription["id"])
    assert subscription["status"] == "active" and item["provisioningStatus"] == "failed"
    [server] = fake_cloud.hetzner.servers.values()
    assert server["labels"]["decabill-item"] == item["id"] and server["name"] == item["hostname"]
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)

    # The order answered an error: it ends, and the server the customer was told does not exist is deleted.
    # The provider cannot be asked on the first run: the order ends all the same, the search waits.
    fake_cloud.hetzner.fail_next("service_error", 503, "try later", method="GET", path="/servers")
    assert await _run_job() == {item["id"]: "ended"}
    assert (await cloud.get(f"/subscriptions/{subscription['id']}", token=customer)).json()["status"] == "canceled"
    assert list(fake_cloud.hetzner.servers.values()) == [server]
    shown = await only_item(cloud, customer, subscription["id"])
    assert shown["provisioningStatus"] == "failed" and shown["hostname"] == server["name"]  # still reserved
    assert await _run_job() == {}  # searched again only after another grace period

    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {item["id"]: "cleaned"}
    assert fake_cloud.hetzner.servers == {} and fake_cloud.cloudflare.records == {}
    assert (await only_item(cloud, customer, subscription["id"])).get("hostname") is None
    assert await positions_of(subscription["id"]) == []
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {}


# --- the server was recorded, then the process died before its A record and server info --------------------


async def test_an_order_that_died_before_its_a_record_gets_it_from_the_job(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    async with _stalled(HetznerProvider, "server_info", call_through=False) as reached:
        await _crash(await start_order(customer, plan["id"]), reached)  # dies waiting for the public IPv4
    [subscription] = (await cloud.get("/subscriptions", token=customer)).json()
    item = await only_item(cloud, customer, subscription["id"])
    assert subscription["status"] == "active" and item["provisioningStatus"] == "active"
    assert fake_cloud.cloudflare.records == {}
    assert not (await load_row(SubscriptionItem, item["id"])).server_info_snapshot
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)

    fake_cloud.hetzner.fail_next("service_error", 503, "try later", method="GET", path="/servers/")
    assert await _run_job() == {item["id"]: "deferred"}  # the server could not be read: after another grace period
    assert await _run_job() == {} and fake_cloud.cloudflare.records == {}
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {item["id"]: "published"}

    [server] = fake_cloud.hetzner.servers.values()
    ip = server["public_net"]["ipv4"]["ip"]
    assert [(r["name"], r["content"]) for r in fake_cloud.cloudflare.records.values()] == [
        (f"{item['hostname']}.decabill.test", ip)]
    assert (await load_row(SubscriptionItem, item["id"])).server_info_snapshot["publicIp"] == ip  # the update job's
    info = await cloud.get(f"/subscriptions/{subscription['id']}/items/{item['id']}/server-info", token=customer)
    assert info.status_code == 200 and info.json()["publicIp"] == ip
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {}


async def test_an_a_record_made_before_the_crash_is_not_made_twice(cloud, admin, customer, fake_cloud):
    plan = await digitalocean_plan(cloud, admin)
    async with _stalled(dns, "create_a_record", call_through=True) as reached:
        await _crash(await start_order(customer, plan["id"]), reached)  # dies right after Cloudflare answered
    [subscription] = (await cloud.get("/subscriptions", token=customer)).json()
    item = await only_item(cloud, customer, subscription["id"])
    [record] = fake_cloud.cloudflare.records.values()
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)

    with capture_logs() as logs:
        assert await _run_job() == {item["id"]: "published"}
    assert list(fake_cloud.cloudflare.records.values()) == [record]  # the existing record counts as made
    assert not [e for e in logs if e["event"] == "subscriptions.dns_create_failed"]
    assert (await load_row(SubscriptionItem, item["id"])).server_info_snapshot["publicIp"] == record["content"]
    assert len(fake_cloud.digitalocean.droplets) == 1
