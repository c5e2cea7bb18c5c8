"""The issue's "done when" scenario through HTTP: a customer subscribes → the billing day arrives → exactly one
invoice with the right lines and totals → its PDF carries valid EN 16931 XML → void → the credit note PDF.
Runs on SQLite and PostgreSQL (the `api` fixtures)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from decabill.invoicing import billing
from decabill.subscriptions import billing as subscription_billing
from decabill.tenancy import bound_tenant
from models.invoicing import InvoiceAuditLog, MailDelivery
from models.subscriptions import OpenPosition
from tests.helpers import assert_error, drain
from tests.invoicing.conftest import (
    CUSTOMER_EMAIL,
    HEADER_TAX,
    attachments,
    embedded_xml,
    iso,
    pdf_text,
    rows,
    schematron_failures,
    summation,
    user_id,
    xpath_text,
)

CENT = Decimal("0.01")


def r2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: float) -> Decimal:
    return Decimal(str(value))


async def test_subscribe_bill_download_void(billing_api, admin, customer, plan, clock, smtp_sink):
    api = billing_api
    subscription = await order_and_reach_billing_day(api, customer, plan, clock)
    sid = subscription["id"]
    with bound_tenant("default"):
        assert await subscription_billing.bill_due_period(_uuid(sid)) is not None  # the period that just ended
        assert await subscription_billing.bill_due_period(_uuid(sid)) is None  # nothing more is due
        [position] = await rows(OpenPosition)
        summary = (await api.get("/invoices/summary", token=customer)).json()
        assert summary["unbilledTotal"] == float(r2(position.amount))
        assert summary["openOverdueCount"] == 0 and summary["openOverdueTotal"] == 0

        # The billing day: the coordinator's selection, then the unit — twice, the second time without effect.
        assert await billing.users_due(0) == [user_id(customer)]
        first = await billing.bill_user(user_id(customer))
        assert first.status == "billed" and len(first.invoices) == 1
        assert (await billing.bill_user(user_id(customer))).status == "nothing"
        assert await billing.users_due(0) == []
    await drain()  # the invoice's PDF and mail are their own jobs, sent after the commit

    [listed] = (await api.get(f"/invoices/{sid}", token=customer)).json()
    year = clock.now.year
    number = f"INV-{year}-00001"
    assert listed["invoiceNumber"] == number and listed["status"] == "issued"
    assert listed["canPay"] and listed["canDownload"] and listed["canPreview"]
    assert not listed["canDownloadVoidDocument"] and listed["voidDocumentNumber"] is None
    assert listed["dueDate"] == (clock.now.date() + dt.timedelta(days=14)).isoformat()

    detail = (await api.get(f"/invoices/{sid}/ref/{listed['id']}", token=customer)).json()
    assert detail == (await api.get(f"/invoices/ref/{listed['id']}", token=customer)).json()
    net = r2(position.amount)
    tax = r2(net * Decimal("0.19"))
    [line] = detail["lineItems"]
    assert line["description"].startswith(f"Subscription {subscription['number']}, ")
    assert (line["quantity"], money(line["unitPriceNet"]), line["taxCategory"], line["taxRate"]) == (1, net, "standard", 19)
    assert (money(line["lineNet"]), money(line["lineTax"]), money(line["lineGross"])) == (net, tax, net + tax)
    assert (money(detail["subtotalNet"]), money(detail["taxTotal"]), money(detail["totalGross"])) == (net, tax, net + tax)
    assert money(detail["balanceDue"]) == net + tax and detail["currency"] == "EUR"
    assert detail["taxBreakdown"] == [{"taxCategory": "standard", "taxRate": 19, "taxAmount": float(tax)}]
    assert iso(detail["issuedAt"]) == clock.now
    with bound_tenant("default"):
        [billed] = await rows(OpenPosition)
    assert str(billed.invoice_id) == listed["id"]  # the position is billed by this invoice

    summary = (await api.get("/invoices/summary", token=customer)).json()
    assert summary["unbilledTotal"] == 0 and summary["openOverdueCount"] == 1
    assert money(summary["openOverdueTotal"]) == net + tax
    [open_listed] = (await api.get("/invoices/open-overdue", token=customer)).json()
    assert open_listed["subscriptionNumber"] == subscription["number"]

    # The PDF: a readable invoice with the Factur-X XML (XSD + EN 16931 rules) whose totals are the database's.
    response = await api.get(f"/invoices/ref/{listed['id']}/pdf", token=customer)
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'attachment; filename="{number}.pdf"'
    text = pdf_text(response.content)
    assert number in text and f"{net + tax:,.2f} EUR" in text and "Ada Lovelace" in text
    xml = embedded_xml(response.content)
    assert schematron_failures(xml) == []
    assert xpath_text(xml, "//rsm:ExchangedDocument/ram:ID") == [number]
    assert summation(xml) == {"LineTotalAmount": net, "TaxBasisTotalAmount": net, "TaxTotalAmount": tax,
                              "GrandTotalAmount": net + tax, "DuePayableAmount": net + tax}
    assert xpath_text(xml, f"{HEADER_TAX}/ram:RateApplicablePercent") == ["19"]
    same = await api.get(f"/invoices/{sid}/ref/{listed['id']}/pdf", token=customer)
    assert same.content == response.content  # stored at the first use, read back afterwards

    # One mail, with the PDF attached.
    [issued_mail] = [m for m in smtp_sink.to(CUSTOMER_EMAIL) if m["Subject"] == f"Your invoice {number} is ready"]
    assert f"Total amount: {net + tax:.2f} EUR" in smtp_sink.text_of(issued_mail)
    attached = attachments(issued_mail)[f"{number}.pdf"]
    assert embedded_xml(attached) == xml

    # Customers cannot void; an admin can — once; the credit note is mailed once.
    assert_error(await api.post(f"/invoices/{sid}/ref/{listed['id']}/void", token=customer), 403)
    voided = await api.post(f"/invoices/{sid}/ref/{listed['id']}/void", token=admin)
    assert voided.status_code == 200, voided.text
    body = voided.json()
    assert body["status"] == "void" and body["balance"] == 0 and not body["canPay"]
    assert body["canDownloadVoidDocument"] and body["voidDocumentNumber"] == f"{number}-CN"
    again = await api.post(f"/invoices/{sid}/ref/{listed['id']}/void", token=admin)
    assert again.status_code == 200 and again.json() == body

    credit = await api.get(f"/invoices/ref/{listed['id']}/void-document/pdf", token=customer)
    assert credit.status_code == 200 and credit.headers["content-type"] == "application/pdf"
    assert credit.headers["content-disposition"] == f'attachment; filename="{number}-CN.pdf"'
    text = pdf_text(credit.content)
    assert "Credit note" in text and f"{number}-CN" in text and number in text.replace(f"{number}-CN", "")
    credit_xml = embedded_xml(credit.content)
    assert schematron_failures(credit_xml) == []
    assert xpath_text(credit_xml, "//rsm:ExchangedDocument/ram:TypeCode") == ["381"]
    assert xpath_text(credit_xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == [number]
    assert money(xpath_text(credit_xml, "//ram:GrandTotalAmount")[0]) == net + tax
    by_admin = await api.get(f"/invoices/{sid}/ref/{listed['id']}/void-document/pdf", token=admin)
    assert by_admin.status_code == 200 and by_admin.content == credit.content
    assert (await api.get(f"/invoices/ref/{listed['id']}/pdf", token=customer)).status_code == 200  # still there

    subjects = [m["Subject"] for m in smtp_sink.to(CUSTOMER_EMAIL)]
    assert subjects.count(f"Your invoice {number} is ready") == 1
    assert subjects.count(f"Credit note {number}-CN for invoice {number}") == 1
    [void_mail] = [m for m in smtp_sink.to(CUSTOMER_EMAIL) if m["Subject"].startswith("Credit note")]
    assert f"{number}-CN.pdf" in attachments(void_mail)

    with bound_tenant("default"):
        audit = sorted(await rows(InvoiceAuditLog), key=lambda e: e.created_at)
        deliveries = await rows(MailDelivery)
    assert [(e.process, e.status_before, e.status_after, e.actor_type) for e in audit] == [
        ("invoice.create", None, "draft", "system"), ("invoice.issue", "draft", "issued", "system"),
        ("invoice.void", "issued", "void", "admin")]
    assert audit[-1].actor_user_id == user_id(admin) and audit[-1].request_id
    assert sorted((d.kind, d.status) for d in deliveries) == [("invoice_issued", "sent"), ("invoice_voided", "sent")]


async def test_void_and_pdf_rules(billing_api, admin, customer, plan, clock):
    api = billing_api
    subscription = await order_and_reach_billing_day(api, customer, plan, clock)
    with bound_tenant("default"):
        await subscription_billing.bill_due_period(_uuid(subscription["id"]))
        [invoice] = (await billing.bill_user(user_id(customer))).invoices
    base = f"/invoices/{subscription['id']}/ref/{invoice.id}"
    assert_error(await api.get(f"/invoices/ref/{invoice.id}/void-document/pdf", token=customer), 400,
                 "Void document is only available for voided invoices")
    assert_error(await api.get(f"{base}/void-document/pdf", token=admin), 400,
                 "Void document is only available for voided invoices")
    # A paid invoice cannot be voided (the payments area marks it paid through the same state machine).
    from decabill import db
    from decabill.invoicing import invoices, states

    with bound_tenant("default"):
        async with db.transaction() as session:
            locked = await invoices.locked(session, invoice.id)
            await states.apply(session, locked, "payment", actor=states.SYSTEM, amount=Decimal("1.00"))
    partially = (await api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    assert partially["status"] == "partially_paid"
    assert money(partially["balanceDue"]) == money(partially["totalGross"]) - 1
    with bound_tenant("default"):
        async with db.transaction() as session:
            locked = await invoices.locked(session, invoice.id)
            await states.apply(session, locked, "payment", actor=states.SYSTEM, amount=locked.balance_due)
    assert_error(await api.post(f"{base}/void", token=admin), 400, "Cannot void a paid invoice")
    paid = (await api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    assert paid["status"] == "paid" and paid["balanceDue"] == 0 and not paid["canPay"]
    assert (await api.get(f"{base}/pdf", token=customer)).status_code == 200


async def order_and_reach_billing_day(api, customer: str, plan: dict, clock) -> dict:
    """Order the plan now, then set the clock to the customer's billing day after the first period ended."""
    from tests.invoicing.conftest import order

    subscription = await order(api, customer, plan["id"])
    day = (await api.get("/invoices/summary", token=customer)).json()["billingDayOfMonth"]
    end = iso(subscription["currentPeriodEnd"])
    assert end.day == 1  # month plan without billing day: periods end on the 1st
    clock.set(end + dt.timedelta(days=day - 1))
    assert clock.now.day == day
    return subscription


def _uuid(value: str):
    import uuid

    return uuid.UUID(value)


async def test_billing_day_pdf_and_mail_are_their_own_jobs_and_a_pdf_asked_for_first_is_rendered_on_demand(
        billing_api, customer, plan, clock, smtp_sink, monkeypatch):
    """Issue #19: issuing commits the invoice with a pending render-then-mail task and no mail yet; the job for
    it lost (a killed process), the customer's download renders the PDF on demand; the coordinator's selection
    later hands the task out, rendering it sends the mail once, and a second run does nothing."""
    from decabill import db
    from decabill.invoicing import rendering
    from models.invoicing import InvoiceDocumentTask

    api = billing_api
    lost: list[str] = []
    monkeypatch.setattr(rendering, "_send", lambda tenant, task_ids: _forget(lost, task_ids))
    subscription = await order_and_reach_billing_day(api, customer, plan, clock)
    with bound_tenant("default"):
        await subscription_billing.bill_due_period(_uuid(subscription["id"]))
        [invoice] = (await billing.bill_user(user_id(customer))).invoices
        [task] = await rows(InvoiceDocumentTask)
        [delivery] = await rows(MailDelivery)
    await drain()
    assert lost == [str(task.id)] and (task.invoice_id, task.status) == (invoice.id, "pending")
    assert (delivery.kind, delivery.status) == ("invoice_issued", "pending")
    assert not [m for m in smtp_sink.to(CUSTOMER_EMAIL) if "is ready" in m["Subject"]]  # issued, not mailed yet

    pdf = await api.get(f"/invoices/ref/{invoice.id}/pdf", token=customer)
    assert pdf.status_code == 200 and invoice.invoice_number in pdf_text(pdf.content)
    assert schematron_failures(embedded_xml(pdf.content)) == []

    with bound_tenant("default"):
        assert await rendering.due_for_rendering(0) == []  # its job may still be on the queue
        clock.set(db.utcnow() + rendering.RETRY_AFTER + dt.timedelta(seconds=1))
        assert await rendering.due_for_rendering(0) == [task.id]
        assert await rendering.render(task.id) == "rendered"
        assert await rendering.render(task.id) == "not_pending"
        assert await rendering.due_for_rendering(0) == [] and await rendering.unfinished() == 0
    await drain()
    mails = [m for m in smtp_sink.to(CUSTOMER_EMAIL) if m["Subject"] == f"Your invoice {invoice.invoice_number} is ready"]
    assert len(mails) == 1
    assert attachments(mails[0])[f"{invoice.invoice_number}.pdf"] == pdf.content  # the PDF rendered on demand


def _forget(lost: list[str], task_ids) -> object:
    async def forget() -> None:
        lost.extend(str(task_id) for task_id in task_ids)

    return forget
