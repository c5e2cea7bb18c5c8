"""Admin billing: /admin/billing.

Not available yet: every operation answers 501 until the admin billing capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Admin billing"


async def get_admin_billing_summary(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def admin_bill_now(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def list_admin_invoices(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def list_admin_open_overdue_invoices(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def create_manual_invoice(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_admin_invoice_detail(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def update_manual_invoice(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def delete_manual_invoice(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def issue_manual_invoice(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def download_admin_invoice_pdf(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def download_admin_invoice_void_document_pdf(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def list_admin_customer_profiles(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def create_admin_customer_profile(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_admin_customer_profile(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def update_admin_customer_profile(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def delete_admin_customer_profile(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def admin_void_invoice(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def admin_mark_invoice_paid(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def admin_mark_invoice_unpaid(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def list_admin_invoice_audit_logs(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_admin_billing_statistics_summary(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_admin_billing_statistics_by_product(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
