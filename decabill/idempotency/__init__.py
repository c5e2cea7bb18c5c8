"""`Idempotency-Key` on write requests: the first response is kept per tenant, caller and key, and a retry
gets it back without the work being done again (see `service`)."""
