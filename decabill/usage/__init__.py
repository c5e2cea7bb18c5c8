"""Usage records of subscriptions (behavior.md part B §5, decision D8): `service.py`."""
