"""Dunning through the HTTP API and the fake providers, time moved forward with the clock: the policy, each
step once (also on two workers at once), suspension stopping the servers at Hetzner and DigitalOcean,
reactivation by the signed Stripe webhook, provider failures retried, a crash repeating nothing harmful."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from decabill.dunning import service as dunning_service
from decabill.dunning import tasks as dunning_tasks
from decabill.jobs import queue
from decabill.subscriptions import suspension
from decabill.subscriptions.schedule import amount_for
from decabill.tenancy import bound_tenant
from models.catalog import ServicePlan
from models.subscriptions import OpenPosition, Subscription
from models.dunning import DunningStep
from models.invoicing import InvoiceAuditLog, MailDelivery
from tests.dunning.conftest import (
    CUSTOMER_EMAIL,
    POLICY,
    days_after,
    droplet_status,
    hetzner_status,
    issue_invoice,
    rows,
    run,
    set_policy,
    uid,
)
from tests.invoicing.conftest import user_id
from tests.helpers import assert_error, drain
from tests.payments.conftest import deliver, pay, session_id_of

BASE = "/admin/billing/dunning-policy"


async def _audit(process: str) -> list[InvoiceAuditLog]:
    return await rows(InvoiceAuditLog, InvoiceAuditLog.process == process)


# --- the policy ------------------------------------------------------------------------------------------------


async def test_the_policy_defaults_validates_and_is_audited(api, admin, customer):
    default = (await api.get(BASE, token=admin)).json()
    assert default["isDefault"] is True and default["enabled"] is False
    assert [(s["days"], s["action"]) for s in default["steps"]] == [
        (3, "remind"), (10, "remind"), (14, "suspend"), (45, "terminate")]
    assert (await api.get(BASE, token=customer)).status_code == 403
    assert (await api.put(BASE, token=customer, json=POLICY)).status_code == 403

    bad = {"steps": [{"days": 10, "action": "remind"}, {"days": 5, "action": "terminate"},
                     {"days": 20, "action": "suspend"}]}
    assert_error(await api.put(BASE, token=admin, json=bad), 400,
                 "step 2: days must be greater than the previous step's (10); terminate must be the last step")
    two = {"steps": [{"days": 1, "action": "terminate"}, {"days": 2, "action": "terminate"}]}
    assert_error(await api.put(BASE, token=admin, json=two), 400, "at most one terminate step")
    assert_error(await api.put(BASE, token=admin, json={"steps": []}), 400,
                 "an enabled policy needs at least one step")

    saved = await set_policy(api, admin)
    assert saved["isDefault"] is False and saved["enabled"] is True and saved["billWhileSuspended"] is True
    assert (await api.get(BASE, token=admin)).json()["steps"] == POLICY["steps"]
    off = await set_policy(api, admin, {"enabled": False, "steps": []})
    assert off["enabled"] is False and off["steps"] == []
    entries = await _audit("dunning.policy_update")
    assert len(entries) == 2 and entries[0].actor_type == "admin"
    assert entries[0].context["after"]["steps"] == POLICY["steps"] and entries[1].context["after"]["enabled"] is False


# --- the steps, suspension, reactivation -------------------------------------------------------------------------


async def test_steps_fire_once_suspend_stops_servers_and_the_stripe_webhook_restarts_them(
        api, admin, customer, servers, clock, fake_cloud, smtp_sink):
    await set_policy(api, admin)
    invoice = await issue_invoice(customer)
    number = invoice.invoice_number

    clock.set(days_after(invoice, 2))  # not yet
    assert (await run(customer)).steps == []

    clock.set(days_after(invoice, 3))  # the reminder, on two workers at once: applied once
    first, second = await asyncio.gather(run(customer), run(customer))
    assert sorted([first.steps, second.steps]) == [[], [(number, 1, "remind")]]
    assert (await run(customer)).steps == []
    detail = (await api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    listed = (await api.get("/invoices/open-overdue", token=customer)).json()
    assert listed[0]["dunningLevel"] == 1 and listed[0]["dunningAction"] == "remind" and listed[0]["dunningAppliedAt"]
    assert detail["status"] == "issued"  # dunning does not change the status (the overdue job does)
    reminders = [m for m in smtp_sink.to(CUSTOMER_EMAIL) if m["Subject"].startswith("Payment reminder")]
    assert [m["Subject"] for m in reminders] == [f"Payment reminder: invoice {number} is overdue"]
    text = smtp_sink.text_of(reminders[0])
    assert "Amount due: 119.00 EUR" in text and f"/invoices?invoiceRefId={invoice.id}" in text

    clock.set(days_after(invoice, 14))  # suspension: servers stopped at both providers
    assert hetzner_status(fake_cloud) == "running" and droplet_status(fake_cloud) == "active"
    done = await run(customer)
    assert done.steps == [(number, 2, "suspend")] and done.suspended and done.stopped == 2
    assert hetzner_status(fake_cloud) == "off" and droplet_status(fake_cloud) == "off"
    ordered = [servers["hetzner"]["number"], servers["digitalocean"]["number"]]  # the customer's, oldest first
    [suspended] = await _audit("dunning.suspended")
    assert suspended.context["subscriptions"] == ordered
    for key in ("hetzner", "digitalocean"):
        shown = (await api.get(f"/subscriptions/{servers[key]['id']}", token=customer)).json()
        assert shown["status"] == "active" and shown["suspendedAt"]
    item = servers["hetzner_item"]
    start = f"/subscriptions/{servers['hetzner']['id']}/items/{item['id']}/actions/start"
    message = f"Your account is suspended because invoice {number} is unpaid. Pay it to reactivate your services."
    assert_error(await api.post(start, token=customer), 400, message)
    assert_error(await api.post(start.replace("/start", "/restart"), token=customer), 400, message)
    assert_error(await api.post("/subscriptions", token=customer, json={"planId": servers["hetzner"]["planId"]}),
                 400, message)
    assert hetzner_status(fake_cloud) == "off"
    again = await run(customer)
    assert again.steps == [] and not again.suspended and again.stopped == 0
    assert len([m for m in smtp_sink.to(CUSTOMER_EMAIL) if m["Subject"].startswith("Your services are suspended")]) == 1

    # payment through the signed Stripe webhook: servers started again, subscriptions unsuspended, once
    session_id = session_id_of((await pay(api, customer, invoice.id)).json()["checkoutUrl"])
    assert (await deliver(api, fake_cloud.stripe.complete_session(session_id))).status_code == 200
    assert hetzner_status(fake_cloud) == "running" and droplet_status(fake_cloud) == "active"
    shown = (await api.get(f"/subscriptions/{servers['hetzner']['id']}", token=customer)).json()
    assert shown["suspendedAt"] is None
    assert (await api.post(start, token=customer)).status_code == 200
    after = await run(customer)
    assert (after.steps, after.reactivated, after.started) == ([], False, 0)
    [reactivated] = await _audit("dunning.reactivated")
    assert reactivated.invoice_id == invoice.id and reactivated.context["reason"] == f"invoice {number} paid"
    assert reactivated.context["subscriptions"] == ordered
    assert [(s.level, s.action) for s in sorted(await rows(DunningStep), key=lambda s: s.level)] == [
        (1, "remind"), (2, "suspend")]
    assert [e.process for e in await _audit("dunning.remind")] == ["dunning.remind"]


async def test_a_payment_that_leaves_other_overdue_invoices_does_not_reactivate_and_void_settles(
        api, admin, customer, servers, clock, fake_cloud):
    await set_policy(api, admin)
    older = await issue_invoice(customer, "50.00")
    newer = await issue_invoice(customer, "20.00")
    clock.set(days_after(older, 3))
    await run(customer)
    clock.set(days_after(older, 14))
    assert (await run(customer)).suspended
    mark_paid = await api.post(f"/admin/billing/invoices/{older.id}/mark-paid", token=admin, json={})
    assert mark_paid.status_code == 200
    assert hetzner_status(fake_cloud) == "off"  # the newer invoice is still past due and unpaid
    item = servers["hetzner_item"]
    start = f"/subscriptions/{servers['hetzner']['id']}/items/{item['id']}/actions/start"
    assert_error(await api.post(start, token=customer), 400,
                 f"Your account is suspended because invoice {newer.invoice_number} is unpaid. "
                 "Pay it to reactivate your services.")
    assert (await run(customer)).reactivated is False
    voided = await api.post(f"/admin/billing/invoices/{newer.id}/void", token=admin)
    assert voided.status_code == 200, voided.text
    assert hetzner_status(fake_cloud) == "running" and droplet_status(fake_cloud) == "active"
    assert len(await _audit("dunning.reactivated")) == 1


# --- failures ------------------------------------------------------------------------------------------------


async def test_provider_failures_during_suspension_and_reactivation_are_retried(
        api, admin, customer, servers, clock, fake_cloud):
    await set_policy(api, admin)
    invoice = await issue_invoice(customer)
    clock.set(days_after(invoice, 3))
    await run(customer)
    clock.set(days_after(invoice, 14))
    fake_cloud.hetzner.fail_next("unavailable", 503, "service unavailable", path="/actions/poweroff")
    first = await run(customer)
    assert first.suspended and first.stopped == 1 and first.failed == 1
    assert hetzner_status(fake_cloud) == "running" and droplet_status(fake_cloud) == "off"
    [failure] = await _audit("dunning.server_stop_failed")
    assert failure.level == "warn" and failure.invoice_id == invoice.id
    assert list(failure.context["servers"]) == [servers["hetzner_item"]["id"]]
    retried = await run(customer)
    assert retried.stopped == 1 and retried.failed == 0 and retried.steps == []
    assert hetzner_status(fake_cloud) == "off"

    fake_cloud.digitalocean.fail_next("server_error", 500, "try again", path="/actions")
    response = await api.post(f"/admin/billing/invoices/{invoice.id}/mark-paid", token=admin, json={})
    assert response.status_code == 200  # the payment stands; the server is started by the next run
    assert hetzner_status(fake_cloud) == "running" and droplet_status(fake_cloud) == "off"
    assert len(await _audit("dunning.server_start_failed")) == 1
    again = await run(customer)
    assert again.started == 1 and droplet_status(fake_cloud) == "active"
    assert len(await _audit("dunning.reactivated")) == 1


async def test_a_crash_between_stopping_servers_and_recording_it_repeats_nothing_harmful(
        api, admin, customer, servers, clock, fake_cloud, monkeypatch, smtp_sink):
    await set_policy(api, admin, {"steps": [{"days": 5, "action": "suspend"}]})
    invoice = await issue_invoice(customer)
    clock.set(days_after(invoice, 5))
    real_mark = suspension._mark

    async def crash(item_id, action):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(suspension, "_mark", crash)
    crashed = await run(customer)  # the first server was stopped, recording that was lost with the worker
    assert crashed.suspended and crashed.stopped == 0
    assert hetzner_status(fake_cloud) == "off"
    monkeypatch.setattr(suspension, "_mark", real_mark)
    calls_before = len(fake_cloud.hetzner.requests)
    repeated = await run(customer)  # stops again (harmless), records, applies no step twice
    assert repeated.steps == [] and repeated.stopped == 2 and not repeated.suspended
    assert hetzner_status(fake_cloud) == "off" and droplet_status(fake_cloud) == "off"
    assert any("poweroff" in r["path"] for r in fake_cloud.hetzner.requests[calls_before:])
    assert (await run(customer)).stopped == 0
    assert len(await rows(DunningStep)) == 1 and len(await _audit("dunning.suspended")) == 1
    assert len(await rows(MailDelivery, MailDelivery.kind == "dunning_suspend")) == 1


# --- termination, billing while suspended -----------------------------------------------------------------------


@pytest.mark.parametrize("bill_while_suspended", [True, False])
async def test_terminate_cancels_at_once_deletes_the_servers_and_records_the_final_charge(
        api, admin, customer, servers, clock, fake_cloud, smtp_sink, bill_while_suspended):
    await set_policy(api, admin, {**POLICY, "billWhileSuspended": bill_while_suspended})
    invoice = await issue_invoice(customer)
    clock.set(days_after(invoice, 3))
    await run(customer)
    suspended_at = clock.set(days_after(invoice, 14))
    await run(customer)
    clock.set(days_after(invoice, 44))
    assert (await run(customer)).steps == []
    ended_at = clock.set(days_after(invoice, 45))
    done = await run(customer)
    assert done.steps == [(invoice.invoice_number, 3, "terminate")] and len(done.terminated) == 2
    assert fake_cloud.hetzner.servers == {} and fake_cloud.digitalocean.droplets == {}
    for key in ("hetzner", "digitalocean"):
        shown = (await api.get(f"/subscriptions/{servers[key]['id']}", token=customer)).json()
        assert shown["status"] == "canceled" and shown["cancelEffectiveAt"]
    [subscription] = await rows(Subscription, Subscription.id == uid(servers["hetzner"]["id"]))
    [plan] = await rows(ServicePlan, ServicePlan.id == subscription.plan_id)
    [final] = await rows(OpenPosition, OpenPosition.subscription_id == subscription.id, OpenPosition.kind == "final")
    start = final.period_start
    billed_until = ended_at if bill_while_suspended else suspended_at
    assert final.period_end == ended_at
    assert final.amount == amount_for(plan, subscription.period_price, start, billed_until) > 0
    [terminated] = await _audit("dunning.terminated")
    assert terminated.context["subscriptions"] == [servers["hetzner"]["id"], servers["digitalocean"]["id"]]  # oldest first
    subjects = [m["Subject"] for m in smtp_sink.to(CUSTOMER_EMAIL)]
    assert subjects.count(f"Subscriptions terminated: invoice {invoice.invoice_number} is unpaid") == 1
    assert (await run(customer)).steps == []  # nothing after the last step
    # still owed: no new orders until paid
    response = await api.post("/subscriptions", token=customer, json={"planId": servers["hetzner"]["planId"]})
    assert response.status_code == 400 and invoice.invoice_number in response.json()["message"]


# --- admin: the customers by level, pausing ---------------------------------------------------------------------


async def test_admins_list_customers_by_level_and_a_pause_lifts_and_holds_the_steps(
        api, admin, customer, servers, clock, fake_cloud):
    await set_policy(api, admin)
    invoice = await issue_invoice(customer)
    listed = (await api.get("/admin/billing/dunning/customers", token=admin)).json()
    assert listed["items"] == [] and listed["total"] == 0  # not past due yet
    clock.set(days_after(invoice, 3))
    await run(customer)
    clock.set(days_after(invoice, 14))
    await run(customer)
    page = (await api.get("/admin/billing/dunning/customers", token=admin)).json()
    [entry] = page["items"]
    assert (entry["email"], entry["dunningLevel"], entry["overdueInvoices"], entry["balanceDue"]) == (
        CUSTOMER_EMAIL, 2, 1, 119.0)
    assert entry["suspendedAt"] and entry["suspendedForInvoiceNumber"] == invoice.invoice_number
    assert entry["dunningPausedUntil"] is None
    assert (await api.get("/admin/billing/dunning/customers?minLevel=3", token=admin)).json()["total"] == 0
    assert (await api.get("/admin/billing/dunning/customers", token=customer)).status_code == 403

    user = entry["userId"]
    until = days_after(invoice, 60)
    paused = await api.put(f"/admin/billing/dunning/customers/{user}/pause", token=admin,
                           json={"pausedUntil": until.isoformat(), "reason": "payment plan"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["dunningPausedUntil"].startswith(until.date().isoformat())
    assert hetzner_status(fake_cloud) == "running" and droplet_status(fake_cloud) == "active"
    clock.set(days_after(invoice, 20))
    held = await run(customer)
    assert held.steps == [] and not held.suspended and hetzner_status(fake_cloud) == "running"
    [entry] = (await api.get("/admin/billing/dunning/customers", token=admin)).json()["items"]
    assert entry["suspendedAt"] is None and entry["dunningPausedUntil"]

    ended = await api.put(f"/admin/billing/dunning/customers/{user}/pause", token=admin, json={"pausedUntil": None})
    assert ended.status_code == 200 and ended.json()["dunningPausedUntil"] is None
    assert hetzner_status(fake_cloud) == "off"  # still owed: suspended again at once

    clock.set(days_after(invoice, 21))  # the audit entries below are told apart by their time
    await api.put(f"/admin/billing/dunning/customers/{user}/pause", token=admin,
                  json={"pausedUntil": until.isoformat(), "reason": "second plan"})
    clock.set(days_after(invoice, 50))  # past the terminate step, but paused: nothing happens
    assert (await run(customer)).steps == [] and hetzner_status(fake_cloud) == "running"
    assert [e.context["reason"] for e in await _audit("dunning.pause")] == ["payment plan", None, "second plan"]
    assert_error(await api.put(f"/admin/billing/dunning/customers/{uuid.uuid4()}/pause", token=admin,
                               json={"pausedUntil": None}), 404, "User not found")


# --- the job layer -------------------------------------------------------------------------------------------


async def test_the_coordinator_sends_a_unit_per_customer_through_the_queue(api, admin, customer, servers, clock,
                                                                           fake_cloud):
    await set_policy(api, admin, {"steps": [{"days": 2, "action": "suspend"}]})
    invoice = await issue_invoice(customer, subscription_id=servers["hetzner"]["id"])
    with bound_tenant("default"):
        assert await dunning_service.customers_due() == []
    clock.set(days_after(invoice, 2))
    with bound_tenant("default"):
        assert await dunning_service.customers_due() == [uid(user_id(customer))]
    broker = queue.get_broker()
    await queue.enqueue(dunning_tasks.run_due)
    await drain(broker)
    assert hetzner_status(fake_cloud) == "off" and droplet_status(fake_cloud) == "off"

    # voidInvoice (invoicing's own admin route) settles too: it sends the customer's dunning unit
    response = await api.post(f"/invoices/{servers['hetzner']['id']}/ref/{invoice.id}/void", token=admin)
    assert response.status_code == 200, response.text
    await drain(broker)
    assert hetzner_status(fake_cloud) == "running" and droplet_status(fake_cloud) == "active"
    with bound_tenant("default"):
        assert await dunning_service.customers_due() == []


async def test_an_invoice_long_overdue_starts_at_the_first_step_and_keeps_the_policys_gaps(
        api, admin, customer, servers, clock, fake_cloud):
    invoice = await issue_invoice(customer)
    clock.set(days_after(invoice, 60))
    assert (await run(customer)).steps == []  # the default policy is off
    await set_policy(api, admin)  # remind 3, suspend 14, terminate 45
    assert (await run(customer)).steps == [(invoice.invoice_number, 1, "remind")]  # not straight to terminate
    clock.set(days_after(invoice, 70))  # 10 days after the reminder: the policy has 11 between them
    assert (await run(customer)).steps == []
    clock.set(days_after(invoice, 71))
    assert (await run(customer)).steps == [(invoice.invoice_number, 2, "suspend")]
    assert hetzner_status(fake_cloud) == "off"
    clock.set(days_after(invoice, 101))  # 30 days after the suspension: the policy has 31
    assert (await run(customer)).steps == []
    assert fake_cloud.hetzner.servers


async def test_a_backorder_waits_while_the_customer_is_suspended_and_is_fulfilled_after_payment(
        api, admin, customer, servers, clock, fake_cloud):
    """A backorder queued before the suspension gets no server while the customer is suspended (it stays
    waiting, its attempts untouched), and is fulfilled once the payment reactivates the account."""
    from decabill.subscriptions import backorders
    from tests.subscriptions.conftest import order

    await set_policy(api, admin)
    invoice = await issue_invoice(customer)
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    waiting = await order(api, customer, servers["hetzner"]["planId"], autoBackorder=True)
    assert waiting["status"] == "pending_backorder"
    [backorder] = (await api.get("/backorders", token=customer)).json()

    clock.set(days_after(invoice, 3))
    await run(customer)  # the reminder
    clock.set(days_after(invoice, 14))
    assert (await run(customer)).suspended
    fake_cloud.hetzner.capacity.clear()  # capacity is back, but the account is suspended
    servers_before = len(fake_cloud.hetzner.servers)
    with bound_tenant("default"):
        assert await backorders.due_backorders(10) == [uid(backorder["id"])]
        assert await backorders.retry_due_backorder(uid(backorder["id"])) == "pending"
        assert await backorders.due_backorders(10) == []  # retried later, not failed
    assert_error(await api.post(f"/backorders/{backorder['id']}/retry", token=customer), 400,
                 f"Your account is suspended because invoice {invoice.invoice_number} is unpaid. "
                 "Pay it to reactivate your services.")
    assert len(fake_cloud.hetzner.servers) == servers_before
    still = (await api.get("/backorders", token=customer)).json()[0]
    assert still["status"] == "pending" and still["failureReason"] == backorder["failureReason"]

    session_id = session_id_of((await pay(api, customer, invoice.id)).json()["checkoutUrl"])
    assert (await deliver(api, fake_cloud.stripe.complete_session(session_id))).status_code == 200
    with bound_tenant("default"):
        assert await backorders.due_backorders(10) == [uid(backorder["id"])]  # woken by the reactivation
        assert await backorders.retry_due_backorder(uid(backorder["id"])) == "fulfilled"
    assert len(fake_cloud.hetzner.servers) == servers_before + 1
    shown = (await api.get(f"/subscriptions/{waiting['id']}", token=customer)).json()
    assert shown["status"] == "active" and shown["suspendedAt"] is None


async def test_a_backorder_provisioned_while_the_suspension_lands_is_suspended_and_stopped(
        api, admin, customer, servers, clock, fake_cloud, monkeypatch):
    """The suspension arrives while a backorder's server is being created: the subscription it fulfils is
    suspended with the others and the next dunning run stops its server."""
    from decabill.subscriptions import backorders, provisioning
    from tests.subscriptions.conftest import order

    await set_policy(api, admin)
    invoice = await issue_invoice(customer)
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    waiting = await order(api, customer, servers["hetzner"]["planId"], autoBackorder=True)
    [backorder] = (await api.get("/backorders", token=customer)).json()
    clock.set(days_after(invoice, 3))
    await run(customer)  # the reminder
    clock.set(days_after(invoice, 14))
    fake_cloud.hetzner.capacity.clear()

    provision = provisioning.provision

    async def suspended_meanwhile(*args, **kwargs):
        assert (await run(customer)).suspended  # the dunning job suspends while the server is being created
        return await provision(*args, **kwargs)

    monkeypatch.setattr(provisioning, "provision", suspended_meanwhile)
    with bound_tenant("default"):
        assert await backorders.retry_due_backorder(uid(backorder["id"])) == "fulfilled"
    shown = (await api.get(f"/subscriptions/{waiting['id']}", token=customer)).json()
    assert shown["status"] == "active" and shown["suspendedAt"]
    new_servers = [s for s in fake_cloud.hetzner.servers.values() if s["status"] == "running"]
    assert len(new_servers) == 1  # the old server was stopped by the suspension, the new one runs ...
    assert (await run(customer)).stopped == 1  # ... until the next run
    assert all(s["status"] == "off" for s in fake_cloud.hetzner.servers.values())
