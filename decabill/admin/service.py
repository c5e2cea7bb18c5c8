"""Admin billing's public face: the operations under /admin/billing, as the handlers and anything else call
them. Each is written in the module of its topic (see the package docstring); this module names them all in
one place, so a caller imports the domain's service and nothing below it."""

from decabill.admin.bill_now import request_bill_now
from decabill.admin.customer_profiles import create_profile, delete_profile, get_profile, list_profiles, update_profile
from decabill.admin.invoices import audit_log, get_invoice, invoice_pdf, list_invoices
from decabill.admin.manual import (
    create_manual_invoice,
    delete_manual_invoice,
    issue_manual_invoice,
    update_manual_invoice,
)
from decabill.admin.payment_status import mark_paid, mark_unpaid, void
from decabill.admin.statistics import billing_summary, statistics_by_product, statistics_summary, statistics_taxes

__all__ = [
    "audit_log", "billing_summary", "create_manual_invoice", "create_profile", "delete_manual_invoice",
    "delete_profile", "get_invoice", "get_profile", "invoice_pdf", "issue_manual_invoice", "list_invoices",
    "list_profiles", "mark_paid", "mark_unpaid", "request_bill_now", "statistics_by_product", "statistics_summary", "statistics_taxes",
    "update_manual_invoice", "update_profile", "void",
]
