"""Webhook endpoints (issue #23): admin CRUD, the secret shown once, the SSRF guard, signed deliveries to a
real receiver, retries with a delivery log, manual redelivery."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from decabill import db
from decabill.webhooks import delivery, signing
from tests.helpers import assert_error
from tests.subscriptions.conftest import manual_plan, order
from tests.webhooks.conftest import drain, register, verified_events


async def test_endpoint_crud_and_the_secret_shown_once(cloud, admin, customer, fake_cloud):
    created = await register(cloud, admin, f"{fake_cloud.receiver_url}/a", ["subscription.created"],
                             description="ERP")
    assert created["secret"].startswith("whsec_")
    assert created["enabled"] is True and created["eventTypes"] == ["subscription.created"]
    endpoint_id = created["id"]

    got = await cloud.get(f"/admin/webhook-endpoints/{endpoint_id}", token=admin)
    assert got.status_code == 200 and "secret" not in got.json()
    assert created["secret"] not in (await cloud.get("/admin/webhook-endpoints", token=admin)).text

    updated = await cloud.post(f"/admin/webhook-endpoints/{endpoint_id}", token=admin,
                               json={"eventTypes": ["invoice.paid", "invoice.issued"], "enabled": False})
    assert updated.status_code == 200
    assert updated.json()["eventTypes"] == ["invoice.paid", "invoice.issued"] and updated.json()["enabled"] is False
    assert updated.json()["description"] == "ERP"

    rotated = await cloud.post(f"/admin/webhook-endpoints/{endpoint_id}/rotate-secret", token=admin)
    assert rotated.status_code == 200 and rotated.json()["secret"] != created["secret"]

    # customers may not see or manage endpoints
    assert (await cloud.get("/admin/webhook-endpoints", token=customer)).status_code == 403
    assert (await cloud.delete(f"/admin/webhook-endpoints/{endpoint_id}", token=customer)).status_code == 403

    assert (await cloud.delete(f"/admin/webhook-endpoints/{endpoint_id}", token=admin)).status_code == 204
    assert_error(await cloud.get(f"/admin/webhook-endpoints/{endpoint_id}", token=admin), 404)
    assert_error(await cloud.get(f"/admin/webhook-endpoints/{uuid.uuid4()}/deliveries", token=admin), 404)


async def test_unknown_event_types_are_refused(cloud, admin, fake_cloud):
    response = await cloud.post("/admin/webhook-endpoints", token=admin,
                                json={"url": fake_cloud.receiver_url, "eventTypes": ["invoice.eaten"]})
    assert response.status_code == 400


async def test_the_ssrf_guard_refuses_addresses_inside_the_network(cloud, env, make_api, admin):
    env.update(WEBHOOK_ALLOW_PRIVATE_TARGETS="false")
    api = await make_api()
    for url in ("http://127.0.0.1:9/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/hook", "http://localhost/hook", "ftp://example.com/hook", "http://user:pw@example.com/x"):
        response = await api.post("/admin/webhook-endpoints", token=admin,
                                  json={"url": url, "eventTypes": ["invoice.paid"]})
        assert response.status_code == 400, (url, response.text)


async def test_https_is_required_in_production(env):
    from decabill.config import reset_settings_cache
    from decabill.errors import BadRequest

    env.update(NODE_ENV="production")
    reset_settings_cache()
    try:
        delivery.check_url("http://erp.example.com/hook")
    except BadRequest as refused:
        assert "https" in refused.message
    else:
        raise AssertionError("http accepted in production")
    assert delivery.check_url("https://erp.example.com/hook")


async def test_an_event_arrives_signed_and_verifiable(cloud, admin, customer, fake_cloud):
    endpoint = await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["subscription.created"])
    other = await register(cloud, admin, f"{fake_cloud.receiver_url}/crm", ["invoice.paid"])
    plan = await manual_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"])
    await drain()

    events = verified_events(fake_cloud.receiver, endpoint["secret"])
    assert [e["type"] for e in events] == ["subscription.created"]
    event = events[0]
    assert event["tenant"] == "default" and event["data"]["id"] == subscription["id"]
    assert event["data"]["status"] == "active" and event["data"]["number"] == subscription["number"]
    assert {d["path"] for d in fake_cloud.receiver.deliveries()} == {"/erp"}
    # A wrong secret, a changed body or an old timestamp do not verify.
    raw = fake_cloud.receiver.deliveries()[0]["body"]
    header = fake_cloud.receiver.deliveries()[0]["headers"]["decabill-signature"]
    assert not signing.verify(raw, header, other["secret"])
    assert not signing.verify(raw.replace(b"active", b"canceled"), header, endpoint["secret"])
    timestamp = int(header.split(",")[0][2:])
    assert not signing.verify(raw, header, endpoint["secret"], now=timestamp + 301)

    log = (await cloud.get(f"/admin/webhook-endpoints/{endpoint['id']}/deliveries", token=admin)).json()
    assert [(d["status"], d["attempts"], d["responseStatus"], d["eventId"]) for d in log] == [
        ("succeeded", 1, 200, event["id"])]
    assert (await cloud.get(f"/admin/webhook-endpoints/{other['id']}/deliveries", token=admin)).json() == []


async def test_a_receiver_failing_three_times_gets_the_event_once_more_and_it_is_logged(cloud, admin, customer,
                                                                                         fake_cloud):
    endpoint = await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["subscription.created"])
    fake_cloud.receiver.fail_next(times=3, status=503, body="maintenance")
    plan = await manual_plan(cloud, admin)
    await order(cloud, customer, plan["id"])
    await drain()
    log_url = f"/admin/webhook-endpoints/{endpoint['id']}/deliveries"
    first = (await cloud.get(log_url, token=admin)).json()
    assert [(d["status"], d["attempts"], d["responseStatus"], d["responseExcerpt"]) for d in first] == [
        ("pending", 1, 503, "maintenance")]
    assert fake_cloud.receiver.deliveries() == []

    for _ in range(3):  # the coordinator's runs (the retry schedule is 0 s in these tests)
        await delivery_round()
    log = (await cloud.get(log_url, token=admin)).json()
    assert [(d["status"], d["attempts"], d["responseStatus"]) for d in log] == [("succeeded", 4, 200)]
    assert log[0]["durationMs"] is not None and log[0]["lastAttemptAt"] is not None
    events = verified_events(fake_cloud.receiver, endpoint["secret"])
    assert len(events) == 1
    assert len(fake_cloud.receiver.requests) == 4
    assert len({json.loads(r["body"])["id"] for r in fake_cloud.receiver.requests}) == 1  # the same event each time

    # a delivery after the last retry is failed for good; redelivery sends it once more
    await delivery_round()
    assert len(fake_cloud.receiver.requests) == 4
    redelivered = await cloud.post(f"{log_url}/{log[0]['id']}/redeliver", token=admin)
    assert redelivered.status_code == 200 and redelivered.json()["status"] == "pending"
    await drain()
    assert len(fake_cloud.receiver.deliveries()) == 2
    assert (await cloud.get(log_url, token=admin)).json()[0]["status"] == "succeeded"


async def test_deliveries_fail_for_good_after_the_schedule(cloud, admin, customer, fake_cloud):
    endpoint = await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["subscription.created"])
    fake_cloud.receiver.fail_next(times=100, status=500)
    plan = await manual_plan(cloud, admin)
    await order(cloud, customer, plan["id"])
    await drain()
    assert await webhook_gauges() == {"pending": 1, "failed": 0}  # the operator's metrics see it waiting
    for _ in range(6):
        await delivery_round()
    log = (await cloud.get(f"/admin/webhook-endpoints/{endpoint['id']}/deliveries", token=admin)).json()
    assert [(d["status"], d["attempts"], d["nextAttemptAt"]) for d in log] == [("failed", 5, None)]
    assert len(fake_cloud.receiver.requests) == 5
    assert await webhook_gauges() == {"pending": 0, "failed": 1}


async def test_due_deliveries_of_one_moment_are_taken_in_id_order(cloud, admin, fake_cloud):
    """The deliveries of one change share their `next_attempt_at`: the id decides which of them a batch takes."""
    from decabill.tenancy import bound_tenant
    from decabill.webhooks.repository import WebhookDeliveryRepository, WebhookEventRepository
    from models.webhooks import WebhookDelivery, WebhookEvent

    endpoints = [await register(cloud, admin, f"{fake_cloud.receiver_url}/{n}", ["subscription.created"])
                 for n in range(4)]
    moment = db.utcnow() - dt.timedelta(minutes=1)
    with bound_tenant("default"):
        async with db.transaction() as session:
            event = await WebhookEventRepository(session).create(WebhookEvent(type="subscription.created", payload={}))
            deliveries = WebhookDeliveryRepository(session)
            made = [deliveries.add(WebhookDelivery(event_id=event.id, endpoint_id=uuid.UUID(endpoint["id"]),
                                                   event_type="subscription.created", next_attempt_at=moment))
                    for endpoint in endpoints]
        ids = sorted(d.id for d in made)
        assert await delivery.due_deliveries(2) == ids[:2]
        assert await delivery.due_deliveries(10) == ids


async def webhook_gauges() -> dict[str, float]:
    """`decabill_webhook_deliveries` as /metrics would report it now."""
    from decabill.config import get_settings
    from decabill.observability import metrics
    from decabill.operations import state

    await state.refresh(get_settings())
    return {status: metrics.WEBHOOK_DELIVERIES.labels(status)._value.get() for status in ("pending", "failed")}


async def delivery_round() -> None:
    """One run of the `webhooks.deliver_due` coordinator, and the units it sent."""
    from decabill.webhooks import tasks

    await tasks.deliver_due()
    await drain()


async def test_an_endpoint_failing_for_days_is_disabled_and_the_admin_mailed(cloud, env, admin, customer, fake_cloud,
                                                                             smtp_sink, monkeypatch):
    endpoint = await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["subscription.created"])
    fake_cloud.receiver.fail_next(times=100, status=500)
    plan = await manual_plan(cloud, admin)
    await order(cloud, customer, plan["id"])
    await drain()
    url = f"/admin/webhook-endpoints/{endpoint['id']}"
    failing = (await cloud.get(url, token=admin)).json()
    assert failing["enabled"] is True and failing["failingSince"] is not None
    await delivery_round()  # failing, but not for days yet
    assert (await cloud.get(url, token=admin)).json()["enabled"] is True
    assert smtp_sink.to("admin@example.com") == []

    days_later = db.utcnow() + dt.timedelta(days=5, minutes=1)
    monkeypatch.setattr(db, "utcnow", lambda: days_later)
    await delivery_round()
    disabled = (await cloud.get(url, token=admin)).json()
    assert disabled["enabled"] is False and "5 days" in disabled["disabledReason"]
    [mail] = smtp_sink.to("admin@example.com")
    assert mail["Subject"] == "Webhook endpoint disabled" and endpoint["url"] in smtp_sink.text_of(mail)

    # nothing more is sent to a disabled endpoint; its pending deliveries fail
    sent = len(fake_cloud.receiver.requests)
    await delivery_round()
    assert len(fake_cloud.receiver.requests) == sent
    log = (await cloud.get(f"{url}/deliveries", token=admin)).json()
    assert [(d["status"], d["error"]) for d in log] == [("failed", "endpoint disabled")]

    enabled = (await cloud.post(url, token=admin, json={"enabled": True})).json()
    assert (enabled["enabled"], enabled["failingSince"], enabled["disabledReason"]) == (True, None, None)



async def test_the_guard_also_stands_before_every_attempt(cloud, env, make_api, admin, customer, fake_cloud):
    """An endpoint saved while private targets were allowed gets nothing once they are not; the attempt is
    logged with the reason."""
    endpoint = await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["subscription.created"])
    env.update(WEBHOOK_ALLOW_PRIVATE_TARGETS="false")
    api = await make_api()
    plan = await manual_plan(api, admin)
    await order(api, customer, plan["id"])
    await drain()
    assert fake_cloud.receiver.requests == []
    log = (await api.get(f"/admin/webhook-endpoints/{endpoint['id']}/deliveries", token=admin)).json()
    assert [(d["status"], d["responseStatus"], d["error"]) for d in log] == [
        ("pending", None, "The webhook URL points inside the network (private or loopback address)")]


async def test_a_name_that_resolves_inside_the_network_is_refused(env, monkeypatch):
    """DNS answers are checked, every address of them (resolution replaced here: tests stay off the network)."""
    import asyncio
    import socket

    import pytest

    from decabill.webhooks.errors import WebhookUrlRefused

    answers = {"erp.example.com": ["93.184.215.14"], "sneaky.example.com": ["93.184.215.14", "10.1.2.3"],
               "metadata.example.com": ["::ffff:169.254.169.254"]}

    async def resolve(_loop, host, port, **_kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    monkeypatch.setattr(asyncio.get_running_loop().__class__, "getaddrinfo", resolve)
    await delivery.check_target("https://erp.example.com/hook")
    for host in ("sneaky.example.com", "metadata.example.com"):
        with pytest.raises(WebhookUrlRefused):
            await delivery.check_target(f"https://{host}/hook")


async def test_the_checked_address_is_the_one_connected_to(env, monkeypatch, fake_cloud):
    """DNS rebinding: the host's first answer is checked and pinned; a second lookup that would now point inside
    the network is never made. Here 127.0.0.1 (the fake receiver) stands for a public address and 127.0.0.2 for
    the inside one, which a second lookup would return."""
    import asyncio
    import socket
    from urllib.parse import urlsplit

    from models.webhooks import WebhookEvent

    fake_cloud.reset()
    receiver = urlsplit(fake_cloud.receiver_url)
    inside_hits: list[bytes] = []

    async def inside(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        inside_hits.append(await reader.read(1024))
        writer.close()

    inside_server = await asyncio.start_server(inside, "127.0.0.2", receiver.port)
    lookups: list[str] = []

    async def rebinding(_loop, host, port, **_kwargs):
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(asyncio.get_running_loop().__class__, "getaddrinfo", rebinding)
    public = delivery._inside_the_network
    monkeypatch.setattr(delivery, "_inside_the_network", lambda address: address != "127.0.0.1" and public(address))
    try:
        url = f"http://erp.example.com:{receiver.port}{receiver.path}/rebind"
        event = WebhookEvent(id=uuid.uuid4(), tenant_id="default", type="invoice.paid", payload={},
                             created_at=dt.datetime.now(dt.timezone.utc))
        attempt = await delivery.post(url, "whsec_test", event, delivery.envelope(event))
    finally:
        inside_server.close()
        await inside_server.wait_closed()

    assert attempt.status == 200, attempt
    assert lookups == ["erp.example.com"] and inside_hits == []
    [got] = fake_cloud.receiver.deliveries()
    assert got["headers"]["host"] == f"erp.example.com:{receiver.port}"
    assert signing.verify(got["body"], got["headers"]["decabill-signature"], "whsec_test")


async def test_a_rotated_secret_keeps_signing_during_the_overlap(cloud, env, make_api, admin, customer, fake_cloud):
    """After rotate-secret every delivery carries a signature by the new secret and one by the replaced secret
    (until WEBHOOK_SECRET_OVERLAP_HOURS is over), so a receiver still holding either accepts it; with an overlap
    of 0 the replaced secret stops at once."""
    plan = await manual_plan(cloud, admin)
    endpoint = await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["subscription.created"])
    url = f"/admin/webhook-endpoints/{endpoint['id']}/rotate-secret"
    rotated = (await cloud.post(url, token=admin)).json()["secret"]
    await order(cloud, customer, plan["id"])
    await drain()
    [first] = fake_cloud.receiver.deliveries()
    header = first["headers"]["decabill-signature"]
    assert header.count("v1=") == 2
    for secret in (rotated, endpoint["secret"]):
        assert signing.verify(first["body"], header, secret)
    assert not signing.verify(first["body"], header, "whsec_someone_else")

    # After the overlap only the new secret signs.
    async with db.transaction() as session:
        from decabill.webhooks.repository import WebhookEndpointRepository
        stored = await WebhookEndpointRepository(session).get(uuid.UUID(endpoint["id"]))
        stored.previous_secret_until = db.utcnow() - dt.timedelta(seconds=1)
    await order(cloud, customer, plan["id"])
    await drain()
    second = fake_cloud.receiver.deliveries()[1]
    assert second["headers"]["decabill-signature"].count("v1=") == 1
    assert signing.verify(second["body"], second["headers"]["decabill-signature"], rotated)
    assert not signing.verify(second["body"], second["headers"]["decabill-signature"], endpoint["secret"])

    # No overlap configured: the replaced secret stops at once.
    env.update(WEBHOOK_SECRET_OVERLAP_HOURS="0")
    api = await make_api()
    newest = (await api.post(url, token=admin)).json()["secret"]
    await order(api, customer, plan["id"])
    await drain()
    third = fake_cloud.receiver.deliveries()[2]
    assert third["headers"]["decabill-signature"].count("v1=") == 1
    assert signing.verify(third["body"], third["headers"]["decabill-signature"], newest)
    assert not signing.verify(third["body"], third["headers"]["decabill-signature"], rotated)
