"""Subscriptions, items and server control: /subscriptions.

Not available yet: every operation answers 501 until the subscriptions capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Subscriptions"


async def list_subscriptions(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def create_subscription(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_subscription(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def cancel_subscription(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def resume_subscription(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def list_subscription_items(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_subscription_item_server_info(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def start_subscription_item_server(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def stop_subscription_item_server(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def restart_subscription_item_server(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
