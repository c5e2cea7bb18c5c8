"""Where Stripe sends the customer back after Checkout (behavior.md part B §6.2).

Base = the tenant's billing console: its `TENANT_FRONTEND_URLS` entry → `BILLING_FRONTEND_URL` → the origin of
`STRIPE_CHECKOUT_SUCCESS_URL` → `http://localhost:4500`.
Path = `STRIPE_CHECKOUT_SUCCESS_URL` / `STRIPE_CHECKOUT_CANCEL_URL`: of an absolute URL its path and query (the
host is the tenant's), a path as it is — the reference's documentation promises "full URL or path", its
code ignored a bare path; we follow the documentation — else `/invoices?payment=success` / `...=cancel`.
`{subscriptionId}` and `{invoiceRefId}` in the path are replaced (URL-encoded), then
`subscriptionId=<id>&invoiceRefId=<id>` is appended with `?` or `&`.

Example: tenant acme=https://billing.acme.com →
`https://billing.acme.com/invoices?payment=success&subscriptionId=sub-1&invoiceRefId=inv-1`.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

from decabill.config import Settings

DEFAULT_SUCCESS_PATH = "/invoices?payment=success"
DEFAULT_CANCEL_PATH = "/invoices?payment=cancel"


def _absolute(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def frontend_base(settings: Settings, tenant: str) -> str:
    return settings.frontend_base(tenant)


def _path(configured: str | None, default: str) -> str:
    if not configured:
        return default
    if _absolute(configured):
        parts = urlsplit(configured)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return configured if configured.startswith("/") else f"/{configured}"


def _return_url(base: str, path: str, subscription_id: str, invoice_id: str) -> str:
    path = path.replace("{subscriptionId}", quote(subscription_id, safe="")).replace(
        "{invoiceRefId}", quote(invoice_id, safe=""))
    separator = "&" if "?" in path else "?"
    return f"{base}{path}{separator}{urlencode({'subscriptionId': subscription_id, 'invoiceRefId': invoice_id})}"


def checkout_return_urls(settings: Settings, tenant: str, *, subscription_id: str, invoice_id: str) -> tuple[str, str]:
    """(success_url, cancel_url) for a checkout of `invoice_id` in `tenant`."""
    base = frontend_base(settings, tenant)
    success = _return_url(base, _path(settings.stripe_checkout_success_url, DEFAULT_SUCCESS_PATH), subscription_id,
                          invoice_id)
    cancel = _return_url(base, _path(settings.stripe_checkout_cancel_url, DEFAULT_CANCEL_PATH), subscription_id,
                         invoice_id)
    return success, cancel
