"""Dunning: what happens to a customer whose invoices stay unpaid past their due date — reminders, suspension
of their servers, termination — per the tenant's policy, and the reactivation once they are settled
(README "Dunning"). Decides *when*; the mechanics belong to subscriptions (suspension, cancellation) and
invoicing (audit trail, mails)."""
