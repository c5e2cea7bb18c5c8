"""An A record Cloudflare refused or failed during a live order is owed, not forgotten: the order succeeds,
the item keeps `dns_pending_since`, and once the grace period has passed the order recovery job
(decabill/subscriptions/recovery.py) creates the record — exactly one, however often it runs — and clears
the flag. A wound-down subscription owes no record."""

from __future__ import annotations

import datetime as dt
import uuid

from decabill.subscriptions import expiration
from decabill.tenancy import bound_tenant
from models.subscriptions import Subscription, SubscriptionItem
from tests.jobs.conftest import load_row, now, update_row
from tests.jobs.test_order_recovery import STALE, _run_job
from tests.subscriptions.conftest import digitalocean_plan, hetzner_plan, only_item, order


async def _order_without_a_record(cloud, admin, customer, fake_cloud, *, plan=None) -> tuple[dict, dict]:
    """An order during which Cloudflare fails the create: (subscription, item) as shown by the API."""
    plan = plan or await hetzner_plan(cloud, admin)
    fake_cloud.cloudflare.fail_next(500, 10000, "internal error", method="POST")
    subscription = await order(cloud, customer, plan["id"])
    item = await only_item(cloud, customer, subscription["id"])
    assert subscription["status"] == "active" and item["provisioningStatus"] == "active"  # the order succeeded
    assert fake_cloud.cloudflare.records == {}
    stored = await load_row(SubscriptionItem, item["id"])
    assert stored.dns_pending_since is not None and stored.server_info_snapshot  # owed, server info cached
    return subscription, item


async def _age(item_id: str) -> None:
    """The item untouched, and its record owed, for longer than the grace period."""
    await update_row(SubscriptionItem, item_id, updated_at=now() - STALE, dns_pending_since=now() - STALE)


def _posts(fake_cloud) -> int:
    return len([r for r in fake_cloud.cloudflare.requests if r["method"] == "POST"])


async def test_an_a_record_cloudflare_failed_during_the_order_is_made_by_the_job(cloud, admin, customer, fake_cloud):
    subscription, item = await _order_without_a_record(cloud, admin, customer, fake_cloud)
    assert await _run_job() == {}  # not before the grace period
    await _age(item["id"])

    assert await _run_job() == {item["id"]: "published"}
    [server] = fake_cloud.hetzner.servers.values()
    assert [(r["name"], r["content"]) for r in fake_cloud.cloudflare.records.values()] == [
        (f"{item['hostname']}.decabill.test", server["public_net"]["ipv4"]["ip"])]
    assert (await load_row(SubscriptionItem, item["id"])).dns_pending_since is None

    posts = _posts(fake_cloud)
    assert await _run_job() == {}  # a second run does nothing ...
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {}  # ... however old the item is
    assert _posts(fake_cloud) == posts and len(fake_cloud.cloudflare.records) == 1
    assert (await only_item(cloud, customer, subscription["id"]))["provisioningStatus"] == "active"


async def test_cloudflare_failing_again_is_retried_after_another_grace_period(cloud, admin, customer, fake_cloud):
    plan = await digitalocean_plan(cloud, admin)
    _subscription, item = await _order_without_a_record(cloud, admin, customer, fake_cloud, plan=plan)
    await _age(item["id"])
    since = (await load_row(SubscriptionItem, item["id"])).dns_pending_since

    fake_cloud.cloudflare.fail_next(503, 10000, "try later", method="POST")
    assert await _run_job() == {item["id"]: "deferred"}
    stored = await load_row(SubscriptionItem, item["id"])
    assert stored.dns_pending_since == since and fake_cloud.cloudflare.records == {}  # still owed, since then
    assert await _run_job() == {}  # tried again only after another grace period

    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {item["id"]: "published"}
    [droplet] = fake_cloud.digitalocean.droplets.values()
    [record] = fake_cloud.cloudflare.records.values()
    assert record["name"] == f"{item['hostname']}.decabill.test"
    assert record["content"] in {n["ip_address"] for n in droplet["networks"]["v4"] if n["type"] == "public"}
    assert (await load_row(SubscriptionItem, item["id"])).dns_pending_since is None


async def test_without_dns_configuration_the_owed_record_is_dropped(cloud, admin, customer, fake_cloud, env):
    _subscription, item = await _order_without_a_record(cloud, admin, customer, fake_cloud)
    await _age(item["id"])
    env.update(CLOUDFLARE_API_TOKEN=None)
    requests = len(fake_cloud.cloudflare.requests)

    assert await _run_job() == {item["id"]: "published"}
    assert (await load_row(SubscriptionItem, item["id"])).dns_pending_since is None
    assert len(fake_cloud.cloudflare.requests) == requests and fake_cloud.cloudflare.records == {}
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE)
    assert await _run_job() == {}


async def test_a_wound_down_subscription_owes_no_a_record(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin, cancelAtPeriodEnd=False)
    subscription, item = await _order_without_a_record(cloud, admin, customer, fake_cloud, plan=plan)
    sid = uuid.UUID(subscription["id"])
    assert (await cloud.post(f"/subscriptions/{sid}/cancel", token=customer)).status_code == 200
    await update_row(Subscription, sid, cancel_effective_at=now() - dt.timedelta(seconds=1))

    await _age(item["id"])  # due for recovery too, but expired first
    with bound_tenant("default"):
        assert await expiration.expire_subscription(sid) == "canceled"
    assert (await load_row(SubscriptionItem, item["id"])).dns_pending_since is None
    await update_row(SubscriptionItem, item["id"], updated_at=now() - STALE, dns_pending_since=now() - STALE)
    assert await _run_job() == {}  # even a flag left over: a canceled subscription is never published again
    assert fake_cloud.cloudflare.records == {} and fake_cloud.hetzner.servers == {}
