"""Payments: invoice checkout and the Stripe webhook."""

import uuid

import connexion

from decabill.payments import service as payments
from handlers._http import dump, principal


async def initiate_invoice_payment_by_ref(invoice_ref_id: str, token_info: dict):
    opened = await payments.initiate_payment(principal(token_info), uuid.UUID(invoice_ref_id))
    return dump(opened, "InitiatePaymentResponse"), 200


async def initiate_invoice_payment(subscription_id: str, invoice_ref_id: str, token_info: dict):
    opened = await payments.initiate_payment(principal(token_info), uuid.UUID(invoice_ref_id),
                                             uuid.UUID(subscription_id))
    return dump(opened, "InitiatePaymentResponse"), 200


async def stripe_payment_webhook():
    """The signature covers the exact bytes Stripe sent: the spec declares no request body, so Connexion
    neither parses nor validates it, and the handler reads it raw. (`connexion.request` is a context proxy:
    it is looked up here, not imported into the module, where inspecting the module would touch it.)"""
    request = connexion.request
    await payments.receive_webhook("stripe", await request.body(), request.headers.get("stripe-signature"))
    return {"received": True}, 200
