"""Admin billing: /admin/billing (services in decabill/admin/; a user's subscriptions from decabill/subscriptions/)."""

import uuid

import inflection

from decabill.admin import service as admin
from decabill.subscriptions import service as subscriptions
from handlers._http import admin_only, dump, dump_list, pdf_attachment, principal


def _optional(body) -> dict:
    # An optional body sent without a JSON content type reaches the handler as raw bytes: treat as absent.
    return body if isinstance(body, dict) else {}


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None  # format: uuid checked by the spec


def _profile_fields(body: dict) -> dict:
    return {inflection.underscore(name): value for name, value in body.items()}


# --- summary, statistics, bill-now -------------------------------------------------------------------------


@admin_only
async def get_admin_billing_summary(token_info: dict):
    return dump(await admin.billing_summary(principal(token_info)), "AdminBillingSummaryResponse"), 200


@admin_only
async def get_admin_billing_statistics_summary(token_info: dict, from_: str | None = None, to: str | None = None,
                                               group_by: str = "day", user_id: str | None = None):
    found = await admin.statistics_summary(principal(token_info), from_=from_, to=to, group_by=group_by,
                                                user_id=_uuid(user_id))
    return dump(found, "BillingStatisticsSummary"), 200


@admin_only
async def get_admin_billing_statistics_by_product(token_info: dict, from_: str | None = None, to: str | None = None,
                                                  user_id: str | None = None):
    found = await admin.statistics_by_product(principal(token_info), from_=from_, to=to, user_id=_uuid(user_id))
    return dump(found, "BillingStatisticsByProduct"), 200


@admin_only
async def get_admin_billing_statistics_taxes(token_info: dict, from_: str | None = None, to: str | None = None):
    found = await admin.statistics_taxes(principal(token_info), from_=from_, to=to)
    return dump(found, "BillingStatisticsTaxes"), 200


@admin_only
async def admin_bill_now(token_info: dict, body=None):
    queued = await admin.request_bill_now(principal(token_info), _uuid(_optional(body).get("userId")))
    return dump(queued, "AdminBillNowResponse"), 200


# --- invoices ----------------------------------------------------------------------------------------------


@admin_only
async def list_admin_invoices(token_info: dict, limit: int = 10, offset: int = 0, search: str | None = None,
                              user_id: str | None = None):
    found = await admin.list_invoices(principal(token_info), limit=limit, offset=offset, search=search,
                                               user_id=_uuid(user_id))
    return dump(found, "PaginatedAdminInvoicesResponse"), 200


@admin_only
async def list_admin_open_overdue_invoices(token_info: dict, limit: int = 10, offset: int = 0,
                                           search: str | None = None, user_id: str | None = None):
    found = await admin.list_invoices(principal(token_info), limit=limit, offset=offset, search=search,
                                               user_id=_uuid(user_id), open_only=True)
    return dump(found, "PaginatedAdminInvoicesResponse"), 200


@admin_only
async def get_admin_invoice_detail(invoice_ref_id: str, token_info: dict):
    found = await admin.get_invoice(principal(token_info), uuid.UUID(invoice_ref_id))
    return dump(found, "ManualInvoiceDetailResponse"), 200


@admin_only
async def download_admin_invoice_pdf(invoice_ref_id: str, token_info: dict):
    return pdf_attachment(await admin.invoice_pdf(principal(token_info), uuid.UUID(invoice_ref_id)))


@admin_only
async def download_admin_invoice_void_document_pdf(invoice_ref_id: str, token_info: dict):
    found = await admin.invoice_pdf(principal(token_info), uuid.UUID(invoice_ref_id), credit_note=True)
    return pdf_attachment(found)


@admin_only
async def list_admin_invoice_audit_logs(invoice_ref_id: str, token_info: dict, limit: int = 20, offset: int = 0):
    found = await admin.audit_log(principal(token_info), uuid.UUID(invoice_ref_id), limit=limit, offset=offset)
    return dump(found, "PaginatedBillingAuditLogsResponse"), 200


# --- manual invoices ---------------------------------------------------------------------------------------


@admin_only
async def create_manual_invoice(body: dict, token_info: dict):
    created = await admin.create_manual_invoice(principal(token_info), user_id=uuid.UUID(body["userId"]),
                                                 line_items=body["lineItems"],
                                                 subscription_id=_uuid(body.get("subscriptionId")),
                                                 currency=body.get("currency"))
    return dump(created, "ManualInvoiceDetailResponse"), 201


@admin_only
async def update_manual_invoice(invoice_ref_id: str, body: dict, token_info: dict):
    updated = await admin.update_manual_invoice(principal(token_info), uuid.UUID(invoice_ref_id), body["lineItems"])
    return dump(updated, "ManualInvoiceDetailResponse"), 200


@admin_only
async def delete_manual_invoice(invoice_ref_id: str, token_info: dict):
    await admin.delete_manual_invoice(principal(token_info), uuid.UUID(invoice_ref_id))
    return None, 204


@admin_only
async def issue_manual_invoice(invoice_ref_id: str, token_info: dict, body=None):
    issued = await admin.issue_manual_invoice(principal(token_info), uuid.UUID(invoice_ref_id),
                                               _optional(body).get("dueInDays"))
    return dump(issued, "ManualInvoiceDetailResponse"), 200


# --- payment status ----------------------------------------------------------------------------------------


@admin_only
async def admin_void_invoice(invoice_ref_id: str, token_info: dict):
    voided = await admin.void(principal(token_info), uuid.UUID(invoice_ref_id))
    return dump(voided, "AdminInvoiceListItem"), 200


@admin_only
async def admin_mark_invoice_paid(invoice_ref_id: str, token_info: dict, body=None):
    paid = await admin.mark_paid(principal(token_info), uuid.UUID(invoice_ref_id),
                                          _optional(body).get("reason"))
    return dump(paid, "AdminInvoiceListItem"), 200


@admin_only
async def admin_mark_invoice_unpaid(invoice_ref_id: str, token_info: dict, body=None):
    reopened = await admin.mark_unpaid(principal(token_info), uuid.UUID(invoice_ref_id),
                                                _optional(body).get("reason"))
    return dump(reopened, "AdminInvoiceListItem"), 200


# --- customer profiles -------------------------------------------------------------------------------------


@admin_only
async def list_admin_customer_profiles(token_info: dict, limit: int = 10, offset: int = 0):
    found = await admin.list_profiles(principal(token_info), limit, offset)
    return dump(found, "PaginatedAdminCustomerProfilesResponse"), 200


@admin_only
async def create_admin_customer_profile(body: dict, token_info: dict):
    fields = _profile_fields(body)
    user_id = uuid.UUID(fields.pop("user_id"))
    created = await admin.create_profile(principal(token_info), user_id, **fields)
    return dump(created, "CustomerProfileResponse"), 201


@admin_only
async def get_admin_customer_profile(id_: str, token_info: dict):
    found = await admin.get_profile(principal(token_info), uuid.UUID(id_))
    return dump(found, "AdminCustomerProfileDetailResponse"), 200


@admin_only
async def update_admin_customer_profile(id_: str, body: dict, token_info: dict):
    updated = await admin.update_profile(principal(token_info), uuid.UUID(id_), **_profile_fields(body))
    return dump(updated, "CustomerProfileResponse"), 200


@admin_only
async def delete_admin_customer_profile(id_: str, token_info: dict):
    await admin.delete_profile(principal(token_info), uuid.UUID(id_))
    return None, 204


# --- a user's subscriptions (beyond the published contract: the console's manual-invoice picker) ----------


@admin_only
async def admin_list_user_subscriptions(user_id: str, token_info: dict, limit: int = 100, offset: int = 0):
    found = await subscriptions.list_user_subscriptions(principal(token_info), uuid.UUID(user_id), limit, offset)
    return dump_list(found, "SubscriptionResponse"), 200
