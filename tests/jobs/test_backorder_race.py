"""A fulfilled backorder produces exactly one subscription and one server, even when the retry job and
`POST /backorders/{id}/retry` run at the same moment (issue 5, "Tested for real")."""

from __future__ import annotations

import asyncio
import uuid

from decabill.subscriptions import backorders
from decabill.tenancy import bound_tenant
from tests.subscriptions.conftest import hetzner_plan, order


async def _waiting_backorder(cloud, admin, customer, fake_cloud) -> tuple[dict, dict]:
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    plan = await hetzner_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"], autoBackorder=True)
    backorder = (await cloud.get("/backorders", token=customer)).json()[0]
    fake_cloud.hetzner.capacity.clear()  # capacity is back
    return subscription, backorder


def _server_creations(fake_cloud) -> int:
    return sum(1 for r in fake_cloud.hetzner.requests if r["method"] == "POST" and r["path"] == "/v1/servers")


async def test_retry_job_and_manual_retry_racing_fulfil_once(cloud, admin, customer, fake_cloud):
    subscription, backorder = await _waiting_backorder(cloud, admin, customer, fake_cloud)
    fake_cloud.hetzner.requests.clear()

    async def job(delay: float) -> str:
        await asyncio.sleep(delay)
        with bound_tenant("default"):
            return await backorders.retry_due_backorder(uuid.UUID(backorder["id"]))

    async def manual(delay: float):
        await asyncio.sleep(delay)
        return await cloud.post(f"/backorders/{backorder['id']}/retry", token=customer)

    # Several deliveries of the job and two manual retries, started together and staggered.
    results = await asyncio.gather(job(0), manual(0), job(0.001), manual(0.002), job(0.005))
    job_results = [r for r in results if isinstance(r, str)]
    responses = [r for r in results if not isinstance(r, str)]

    assert all(r.status_code == 200 and r.json()["status"] == "fulfilled" for r in responses), [r.text for r in responses]
    assert set(job_results) <= {"fulfilled", "busy"}
    assert _server_creations(fake_cloud) == 1
    assert len(fake_cloud.hetzner.servers) == 1
    listed = (await cloud.get("/subscriptions", token=customer)).json()
    assert [s["id"] for s in listed] == [subscription["id"]] and listed[0]["status"] == "active"
    assert (await cloud.get("/backorders", token=customer)).json()[0]["status"] == "fulfilled"


async def test_a_job_delivered_twice_at_once_provisions_once(cloud, admin, customer, fake_cloud):
    _subscription, backorder = await _waiting_backorder(cloud, admin, customer, fake_cloud)
    fake_cloud.hetzner.requests.clear()
    with bound_tenant("default"):
        outcomes = await asyncio.gather(*(backorders.retry_due_backorder(uuid.UUID(backorder["id"])) for _ in range(4)))
    assert outcomes.count("fulfilled") >= 1 and set(outcomes) <= {"fulfilled", "busy"}
    assert _server_creations(fake_cloud) == 1


async def test_cancel_racing_a_retry_leaves_a_consistent_result(cloud, admin, customer, fake_cloud):
    subscription, backorder = await _waiting_backorder(cloud, admin, customer, fake_cloud)

    async def job() -> str:
        with bound_tenant("default"):
            return await backorders.retry_due_backorder(uuid.UUID(backorder["id"]))

    outcome, cancel = await asyncio.gather(job(), cloud.post(f"/backorders/{backorder['id']}/cancel", token=customer))
    state = (await cloud.get(f"/subscriptions/{subscription['id']}", token=customer)).json()["status"]
    if cancel.status_code == 200:  # the cancel ran first: nothing was provisioned
        assert cancel.json()["status"] == "cancelled" and state == "canceled"
        assert fake_cloud.hetzner.servers == {}
    else:  # the retry won: cancelling a fulfilled backorder is refused, the subscription runs
        assert cancel.status_code == 400 and outcome == "fulfilled" and state == "active"
        assert len(fake_cloud.hetzner.servers) == 1
