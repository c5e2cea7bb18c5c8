"""The whole manual-invoice lifecycle through HTTP: draft → edit → issue → paid → unpaid → void, every illegal
transition answered with its 4xx and the audit trail checked after each step (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from models.invoicing import Invoice
from tests.admin.conftest import BASE, action, audit, create_draft, issue, line, processes
from tests.helpers import assert_error
from tests.invoicing.conftest import embedded_xml, pdf_text, schematron_failures, summation, user_id
from tests.jobs.conftest import update_row


def money(value) -> Decimal:
    return Decimal(str(value))


async def refused(api, admin, method: str, path: str, status: int, message: str, **kwargs) -> None:
    response = await api.request(method, f"{BASE}{path}", token=admin, **kwargs)
    assert_error(response, status, message)


async def test_manual_invoice_lifecycle_with_audit_trail(billing_api, admin, customer, clock):
    api = billing_api
    owner = user_id(customer)
    admin_id = str(user_id(admin))

    # --- draft: totals from the lines (19 % and 7 %), no number, no profile needed yet -------------------------
    draft = await create_draft(api, admin, owner, [line("Setup", 2, 49.5), line("Books", 3, 12.99, "reduced")])
    iid = draft["id"]
    assert draft["status"] == "draft" and draft["invoiceNumber"] is None and draft["currency"] == "EUR"
    assert draft["userId"] == str(owner) and draft["userEmail"] == "customer@example.com"
    assert "subscriptionId" not in draft
    # Setup 99.00 net, 18.81 tax; Books 38.97 net, 2.7279 → 2.73 tax
    assert [(money(i["lineNet"]), money(i["lineTax"]), money(i["lineGross"])) for i in draft["lineItems"]] == [
        (Decimal("99.00"), Decimal("18.81"), Decimal("117.81")), (Decimal("38.97"), Decimal("2.73"), Decimal("41.70"))]
    assert (money(draft["subtotalNet"]), money(draft["taxTotal"]), money(draft["totalGross"])) == (
        Decimal("137.97"), Decimal("21.54"), Decimal("159.51"))
    assert draft["taxBreakdown"] == [{"taxCategory": "standard", "taxRate": 19, "taxAmount": 18.81},
                                     {"taxCategory": "reduced", "taxRate": 7, "taxAmount": 2.73}]
    assert not draft["canPay"] and not draft["canDownload"] and not draft["canPreview"]
    trail = await audit(api, admin, iid)
    assert processes(trail) == ["invoice.manual_create", "invoice.create"]
    assert trail[0]["context"]["adminUserId"] == admin_id and trail[0]["context"]["actor"] == "admin"
    assert trail[0]["userId"] == str(owner) and trail[0]["invoiceId"] == iid and trail[0]["level"] == "info"
    assert trail[0]["message"] == "Admin created manual invoice draft"

    # a draft has no PDF and no credit note
    await refused(api, admin, "GET", f"/invoices/{iid}/pdf", 400, "Draft invoices have no PDF")
    await refused(api, admin, "GET", f"/invoices/{iid}/void-document/pdf", 400,
                  "Void document is only available for voided invoices")
    # a draft can be neither paid, reopened nor voided
    await refused(api, admin, "POST", f"/invoices/{iid}/mark-paid", 400, "Cannot mark invoice as paid from status draft")
    await refused(api, admin, "POST", f"/invoices/{iid}/mark-unpaid", 400, "Can only mark unpaid from paid status")
    await refused(api, admin, "POST", f"/invoices/{iid}/void", 400,
                  "Only issued invoices with an invoice number can be voided")
    assert len(await audit(api, admin, iid)) == 2  # refused actions leave no entry

    # --- edit the draft: every line replaced, totals recomputed ---------------------------------------------------
    response = await api.post(f"{BASE}/invoices/{iid}", token=admin, json={"lineItems": [line("Consulting", 1.5, 80)]})
    assert response.status_code == 200, response.text
    edited = response.json()
    assert [i["description"] for i in edited["lineItems"]] == ["Consulting"]
    assert (money(edited["subtotalNet"]), money(edited["taxTotal"]), money(edited["totalGross"]),
            money(edited["balanceDue"])) == (Decimal("120.00"), Decimal("22.80"), Decimal("142.80"), Decimal("142.80"))
    trail = await audit(api, admin, iid)
    assert processes(trail) == ["invoice.manual_update", "invoice.manual_create", "invoice.create"]
    assert money(trail[0]["context"]["totalGross"]) == Decimal("142.80")
    assert money(trail[0]["context"]["previousTotalGross"]) == Decimal("159.51")

    # --- issue: gapless number, due date, PDF with EN 16931 XML ---------------------------------------------------
    issued = await issue(api, admin, iid, dueInDays=10)
    year = dt.datetime.now(dt.timezone.utc).year
    assert issued["invoiceNumber"] == f"INV-{year}-00001" and issued["status"] == "issued"
    assert issued["dueDate"] == (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=10)).isoformat()
    assert issued["canPay"] and issued["canDownload"] and money(issued["balanceDue"]) == Decimal("142.80")
    trail = await audit(api, admin, iid)
    assert processes(trail)[:2] == ["invoice.manual_issue", "invoice.issue"]
    assert trail[0]["context"]["dueInDays"] == 10
    assert (trail[1]["context"]["statusBefore"], trail[1]["context"]["statusAfter"]) == ("draft", "issued")

    pdf = await api.get(f"{BASE}/invoices/{iid}/pdf", token=admin)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="INV-{year}-00001.pdf"'
    xml = embedded_xml(pdf.content)
    assert summation(xml)["GrandTotalAmount"] == Decimal("142.80")
    assert schematron_failures(xml) == []
    assert f"INV-{year}-00001" in pdf_text(pdf.content)

    # --- an issued invoice is no draft any more ---------------------------------------------------------------------
    only_drafts = "Only draft invoices can be modified"
    await refused(api, admin, "POST", f"/invoices/{iid}", 400, only_drafts, json={"lineItems": [line("x", 1, 1)]})
    await refused(api, admin, "DELETE", f"/invoices/{iid}", 400, only_drafts)
    await refused(api, admin, "POST", f"/invoices/{iid}/issue", 400, only_drafts, json={})
    await refused(api, admin, "POST", f"/invoices/{iid}/mark-unpaid", 400, "Can only mark unpaid from paid status")
    await refused(api, admin, "GET", f"/invoices/{iid}/void-document/pdf", 400,
                  "Void document is only available for voided invoices")
    assert len(await audit(api, admin, iid)) == 5

    # --- mark paid (with the request id of the call in the trail) ----------------------------------------------------
    response = await api.post(f"{BASE}/invoices/{iid}/mark-paid", token=admin, json={"reason": "Bank transfer 4711"},
                              headers={"X-Request-Id": "req-mark-paid-1"})
    assert response.status_code == 200, response.text
    paid = response.json()
    assert paid["status"] == "paid" and paid["balance"] == 0 and not paid["canPay"]
    assert paid["userEmail"] == "customer@example.com" and paid["invoiceNumber"] == f"INV-{year}-00001"
    [entry] = (await audit(api, admin, iid))[:1]
    assert entry["process"] == "invoice.mark_paid_manual" and entry["message"] == "Admin marked invoice as paid"
    assert entry["context"]["previousStatus"] == "issued" and money(entry["context"]["previousBalanceDue"]) == Decimal("142.80")
    assert entry["context"]["reason"] == "Bank transfer 4711" and entry["context"]["adminUserId"] == admin_id
    assert (entry["context"]["statusBefore"], entry["context"]["statusAfter"]) == ("issued", "paid")
    assert entry["context"]["requestId"] == "req-mark-paid-1"

    await refused(api, admin, "POST", f"/invoices/{iid}/void", 400, "Cannot void a paid invoice")
    await refused(api, admin, "POST", f"/invoices/{iid}/mark-paid", 400, "Cannot mark invoice as paid from status paid")
    assert len(await audit(api, admin, iid)) == 6

    # --- mark unpaid: not yet due → issued, owes its total again ------------------------------------------------------
    reopened = await action(api, admin, iid, "mark-unpaid", reason="Chargeback")
    assert reopened["status"] == "issued" and money(reopened["balance"]) == Decimal("142.80") and reopened["canPay"]
    [entry] = (await audit(api, admin, iid))[:1]
    assert entry["process"] == "invoice.mark_unpaid_manual" and entry["context"]["reason"] == "Chargeback"
    assert (entry["context"]["statusBefore"], entry["context"]["statusAfter"]) == ("paid", "issued")

    # --- void: credit note, nothing owed; voiding again changes nothing -------------------------------------------------
    voided = await action(api, admin, iid, "void")
    assert voided["status"] == "void" and voided["balance"] == 0 and not voided["canPay"]
    assert voided["canDownloadVoidDocument"] and voided["voidDocumentNumber"] == f"INV-{year}-00001-CN"
    trail = await audit(api, admin, iid)
    assert trail[0]["process"] == "invoice.void" and trail[0]["context"]["adminUserId"] == admin_id
    assert (trail[0]["context"]["statusBefore"], trail[0]["context"]["statusAfter"]) == ("issued", "void")
    again = await action(api, admin, iid, "void")
    assert again == voided
    assert len(await audit(api, admin, iid)) == len(trail)

    await refused(api, admin, "POST", f"/invoices/{iid}/mark-unpaid", 400, "Can only mark unpaid from paid status")
    await refused(api, admin, "POST", f"/invoices/{iid}/mark-paid", 400, "Cannot mark invoice as paid from status void")
    await refused(api, admin, "POST", f"/invoices/{iid}", 400, only_drafts, json={"lineItems": [line("x", 1, 1)]})
    await refused(api, admin, "DELETE", f"/invoices/{iid}", 400, only_drafts)
    credit = await api.get(f"{BASE}/invoices/{iid}/void-document/pdf", token=admin)
    assert credit.status_code == 200 and credit.headers["content-type"] == "application/pdf"
    assert credit.headers["content-disposition"] == f'attachment; filename="INV-{year}-00001-CN.pdf"'
    assert summation(embedded_xml(credit.content))["GrandTotalAmount"] == Decimal("142.80")

    detail = (await api.get(f"{BASE}/invoices/{iid}", token=admin)).json()
    assert detail["status"] == "void" and detail["userEmail"] == "customer@example.com"
    assert len(await audit(api, admin, iid)) == len(trail)
    # the customer sees the same invoice on their own routes
    mine = (await api.get(f"/invoices/ref/{iid}", token=customer)).json()
    assert mine["status"] == "void" and mine["invoiceNumber"] == f"INV-{year}-00001"


async def test_mark_unpaid_after_the_due_date_reopens_as_overdue(billing_api, admin, customer):
    api = billing_api
    draft = await create_draft(api, admin, user_id(customer), [line("Support", 1, 100)])
    await issue(api, admin, draft["id"])
    await action(api, admin, draft["id"], "mark-paid")
    await update_row(Invoice, draft["id"], due_date=dt.date.today() - dt.timedelta(days=1))
    reopened = await action(api, admin, draft["id"], "mark-unpaid")
    assert reopened["status"] == "overdue" and money(reopened["balance"]) == Decimal("119.00")
    # overdue is open: it can be paid again, or voided
    assert (await action(api, admin, draft["id"], "mark-paid"))["status"] == "paid"
    await action(api, admin, draft["id"], "mark-unpaid")
    assert (await action(api, admin, draft["id"], "void"))["status"] == "void"
    assert processes(await audit(api, admin, draft["id"]))[:5] == [
        "invoice.void", "invoice.mark_unpaid_manual", "invoice.mark_paid_manual", "invoice.mark_unpaid_manual",
        "invoice.mark_paid_manual"]


async def test_delete_draft_keeps_its_audit_trail(billing_api, admin, customer):
    api = billing_api
    draft = await create_draft(api, admin, user_id(customer), [line("Oops", 1, 10)])
    response = await api.delete(f"{BASE}/invoices/{draft['id']}", token=admin)
    assert response.status_code == 204 and response.content == b""
    assert_error(await api.get(f"{BASE}/invoices/{draft['id']}", token=admin), 404, f"Invoice {draft['id']} not found")
    await refused(api, admin, "DELETE", f"/invoices/{draft['id']}", 404, f"Invoice {draft['id']} not found")
    await refused(api, admin, "POST", f"/invoices/{draft['id']}/issue", 404, f"Invoice {draft['id']} not found", json={})
    trail = await audit(api, admin, draft["id"])
    assert processes(trail) == ["invoice.manual_delete", "invoice.manual_create", "invoice.create"]
    assert (trail[0]["context"]["statusBefore"], trail[0]["context"]["statusAfter"]) == ("draft", "deleted")
    # an id that never had an invoice or an entry
    assert_error(await api.get(f"{BASE}/invoices/00000000-0000-4000-8000-000000000000/audit-logs", token=admin), 404,
                 "Invoice 00000000-0000-4000-8000-000000000000 not found")


async def test_issue_needs_a_complete_profile_and_numbers_stay_gapless(billing_api, admin, customer):
    api = billing_api
    stranger = await api.user_token(admin, "no-profile@example.com")
    draft = await create_draft(api, admin, user_id(stranger), [line("Work", 1, 10)])
    await refused(api, admin, "POST", f"/invoices/{draft['id']}/issue", 400,
                  "Customer profile must be complete before issuing invoice", json={})
    await api.post("/customer-profile", token=stranger, json={"firstName": "Only", "lastName": "Names"})
    await refused(api, admin, "POST", f"/invoices/{draft['id']}/issue", 400,
                  "Customer profile must be complete before issuing invoice", json={})
    assert (await api.get(f"{BASE}/invoices/{draft['id']}", token=admin)).json()["status"] == "draft"
    assert processes(await audit(api, admin, draft["id"])) == ["invoice.manual_create", "invoice.create"]

    # the refused issues consumed no number
    other = await create_draft(api, admin, user_id(customer), [line("Work", 1, 10)])
    year = dt.datetime.now(dt.timezone.utc).year
    assert (await issue(api, admin, other["id"]))["invoiceNumber"] == f"INV-{year}-00001"
    second = await create_draft(api, admin, user_id(customer), [line("More", 1, 10)])
    issued = await issue(api, admin, second["id"])
    assert issued["invoiceNumber"] == f"INV-{year}-00002"
    assert issued["dueDate"] == (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=14)).isoformat()


async def test_create_rules(billing_api, admin, customer, plan):
    api = billing_api
    owner = user_id(customer)
    other = await api.user_token(admin, "other@example.com")
    subscription = (await api.post("/subscriptions", token=customer, json={"planId": plan["id"]})).json()
    missing = "00000000-0000-4000-8000-000000000001"

    async def create(expect: int, message: str | None = None, **body):
        response = await api.post(f"{BASE}/invoices/manual", token=admin,
                                  json={"userId": str(owner), "lineItems": [line("Work", 1, 10)], **body})
        if expect >= 400:
            assert_error(response, expect, message)
        else:
            assert response.status_code == expect, response.text
        return response.json()

    await create(404, "User not found", userId=missing)
    await create(404, f"Subscription with ID {missing} not found", subscriptionId=missing)
    await create(400, "Subscription does not belong to user", userId=str(user_id(other)), subscriptionId=subscription["id"])
    await create(400, "Quantity must be greater than 0 and less than 1000000", lineItems=[line("Work", 0, 10)])
    # one message for a quantity out of range, on either side
    await create(400, "Quantity must be greater than 0 and less than 1000000", lineItems=[line("Work", -1, 10)])
    await create(400, "Quantity must be greater than 0 and less than 1000000", lineItems=[line("Work", 1e308, 10)])
    await create(400, "Unit price must be between -100000000 and 100000000", lineItems=[line("Work", 1, 1e308)])
    # a number a float cannot hold is refused before it can turn into 0 (or infinity)
    for literal in ("1e-400", "1e400", "-2.5E-999"):
        body = ('{"userId": "%s", "lineItems": [{"description": "Work", "quantity": 1, "unitPriceNet": %s}]}'
                % (owner, literal))
        refused = await api.post(f"{BASE}/invoices/manual", token=admin, content=body,
                                 headers={"Content-Type": "application/json"})
        assert refused.status_code == 400, (literal, refused.text)
        assert "too small or too large" in refused.json()["message"]
    # a negative line is a discount: the invoice as a whole never goes below 0
    negative = ("Invoice total must not be negative: a negative line may only be a discount on the other lines; "
                "to take back an issued invoice, void it or issue a credit note")
    await create(400, negative, lineItems=[line("Refund", 1, -5)])
    await create(400, negative, lineItems=[line("Work", 1, 10), line("Discount", 1, -10.01)])
    await create(400, "Quantity must have at most 4 decimal places", lineItems=[line("Work", 0.00001, 10)])
    await create(400, "Unit price must have at most 4 decimal places", lineItems=[line("Work", 1, 1.23456)])
    await create(400, "Description is required; " + "Quantity must be greater than 0 and less than 1000000",
                 lineItems=[line("  ", 1, 10), line("Work", -1, 10)])
    await create(400, "Currency must be an ISO 4217 code", currency="EURO")
    await create(400, lineItems=[])  # minItems from the spec
    await create(400, lineItems=[{"description": "Work", "quantity": 1}])  # unitPriceNet required
    await create(400, lineItems=[line("Work", 1, 10, "zero")])  # not a tax category
    await create(400, unknown=True)  # additionalProperties: false

    tied = await create(201, subscriptionId=subscription["id"], currency="usd",
                        lineItems=[line("Credit", 1, -5.5), line("Extra hours", 2, 30)])
    assert tied["subscriptionId"] == subscription["id"] and tied["currency"] == "USD"
    assert money(tied["subtotalNet"]) == Decimal("54.50")  # negative unit prices are allowed (reference)

    # drafts of any user can be listed, edited and issued by the admin; an API key cannot act
    listed = (await api.get(f"{BASE}/invoices?userId={owner}", token=admin)).json()
    assert [item["id"] for item in listed["items"]] == [tied["id"]]
    assert listed["items"][0]["subscriptionNumber"] == subscription["number"]


async def test_a_draft_with_a_negative_total_is_never_issued(billing_api, admin, customer):
    """A draft made before the discount rule (or by any other path) with a negative total: issuing refuses it and
    points to voiding / credit notes; no number is used up."""
    api = billing_api
    draft = await create_draft(api, admin, user_id(customer), [line("Work", 1, 10)])
    await update_row(Invoice, draft["id"], subtotal_net=Decimal("-10.00"), tax_total=Decimal("-1.90"),
                     total_gross=Decimal("-11.90"), balance_due=Decimal("-11.90"))
    response = await api.post(f"{BASE}/invoices/{draft['id']}/issue", token=admin, json={})
    assert_error(response, 400, "Invoice total must not be negative: a negative line may only be a discount on the "
                                "other lines; to take back an issued invoice, void it or issue a credit note")
    detail = (await api.get(f"{BASE}/invoices/{draft['id']}", token=admin)).json()
    assert detail["status"] == "draft" and not detail.get("invoiceNumber")
