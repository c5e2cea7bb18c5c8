"""Outbound webhooks: endpoints, the event outbox, signed deliveries through the job layer."""
