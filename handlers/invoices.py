"""Customer invoices: /invoices.

Not available yet: every operation answers 501 until the invoicing capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Invoicing"


async def get_invoices_summary(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def list_open_overdue_invoices(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_invoice_details_by_ref(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def download_invoice_pdf_by_ref(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def download_invoice_void_document_pdf_by_ref(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def list_invoices(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def create_invoice(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_invoice_details(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def download_invoice_pdf(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def download_invoice_void_document_pdf(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def void_invoice(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
