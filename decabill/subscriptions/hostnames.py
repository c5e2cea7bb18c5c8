"""Hostnames under DNS_BASE_DOMAIN (behavior.md part A §6.7, decision D21).

A server's name is `<adjective>-<noun>-<5 random [a-z0-9]>`, reserved *before* the server is created.
The reservation table's unique key on `hostname` covers every tenant (the base domain is one DNS
namespace); a candidate already taken, or taken concurrently, is skipped. After 50 failed candidates
the order answers 503 rather than the reference's 500.
"""

from __future__ import annotations

import re
import secrets
import string

from sqlalchemy.ext.asyncio import AsyncSession

from decabill.subscriptions.errors import HostnamesExhausted
from decabill.subscriptions.repository import ReservedHostnameRepository
from models.subscriptions import SubscriptionItem

ADJECTIVES = ("awesome brave calm daring eager fancy gentle happy icy jolly kind lucky mighty noble odd proud quick "
              "rapid swift tidy urban vivid witty young zesty").split()
NOUNS = ("armadillo bear cobra dragon eagle falcon goat hawk ibis jaguar koala lion mouse newt otter panda quail raven "
         "sloth tiger urchin viper wolf yak zebra").split()
SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
MAX_ATTEMPTS = 50
DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def candidate() -> str:
    suffix = "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(5))
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(NOUNS)}-{suffix}"


def is_valid_label(hostname: str | None) -> bool:
    return bool(hostname) and DNS_LABEL.match(hostname) is not None


def fqdn(hostname: str, base_domain: str) -> str:
    return f"{hostname}.{base_domain}"


async def reserve(session: AsyncSession, item: SubscriptionItem) -> str:
    """Reserve a fresh hostname for `item` inside the caller's transaction and set `item.hostname`."""
    if item.hostname:
        return item.hostname
    reserved = ReservedHostnameRepository(session)
    for _ in range(MAX_ATTEMPTS):
        name = candidate()
        if not await reserved.reserve(name, item):
            continue  # taken (by any tenant); try another
        item.hostname = name
        return name
    raise HostnamesExhausted(MAX_ATTEMPTS)


async def release(session: AsyncSession, item: SubscriptionItem) -> None:
    await ReservedHostnameRepository(session).release_of(item)
    item.hostname = None
