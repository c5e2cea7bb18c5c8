"""DNS A records at Cloudflare (behavior.md part A §6.7), through its REST API v4 with httpx.

Active only when both CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID are set (otherwise every call is a
no-op that reports "skipped"). Base URL CLOUDFLARE_API_URL (default https://api.cloudflare.com/client/v4).

    create: POST   /zones/{zone}/dns_records  {type: A, name: fqdn, content: ip, ttl: 1, proxied: false}
            (Cloudflare's "an identical record already exists" counts as created: a repeated step is a no-op)
    delete: GET    /zones/{zone}/dns_records?type=A&name=<fqdn>, then DELETE .../dns_records/{id} each

A DNS failure never fails an order or a cancellation: callers log it (`DnsError`) and go on.
"""

from __future__ import annotations

import httpx

from decabill.config import get_settings
from decabill.subscriptions.hostnames import fqdn as make_fqdn
from decabill.subscriptions.hostnames import is_valid_label

TIMEOUT_SECONDS = 15.0


#: Cloudflare's error codes for "this record exists already" (identical name, type and content)
RECORD_EXISTS = {81057, 81058}


class DnsError(Exception):
    def __init__(self, message: str, codes: frozenset[int] = frozenset()) -> None:
        super().__init__(message)
        self.codes = codes  # Cloudflare's error codes, when it answered with some


def is_configured() -> bool:
    settings = get_settings()
    return bool(settings.cloudflare_api_token and settings.cloudflare_zone_id)


def _client() -> httpx.AsyncClient:
    settings = get_settings()
    return httpx.AsyncClient(base_url=f"{settings.cloudflare_api_url}/zones/{settings.cloudflare_zone_id}",
                             headers={"Authorization": f"Bearer {settings.cloudflare_api_token}"},
                             timeout=TIMEOUT_SECONDS)


def _result(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not body.get("success") or response.status_code >= 400:
        errors = [e for e in (body.get("errors") if isinstance(body, dict) else None) or [] if isinstance(e, dict)]
        detail = "; ".join(str(e.get("message", e)) for e in errors) or response.reason_phrase
        codes = frozenset(e["code"] for e in errors if isinstance(e.get("code"), int))
        raise DnsError(f"Cloudflare answered {response.status_code}: {detail}", codes)
    return body.get("result")


async def create_a_record(hostname: str, ip: str) -> bool:
    """True when the record exists now (created, or there already — an interrupted order's step run again),
    False when DNS is not configured or the name is not a valid label."""
    if not is_configured() or not is_valid_label(hostname) or not ip:
        return False
    name = make_fqdn(hostname, get_settings().dns_base_domain)
    try:
        async with _client() as client:
            _result(await client.post("/dns_records", json={"type": "A", "name": name, "content": ip, "ttl": 1,
                                                           "proxied": False}))
    except DnsError as exc:
        if not exc.codes & RECORD_EXISTS:
            raise
    except httpx.HTTPError as exc:
        raise DnsError(f"Cloudflare could not be reached: {exc}") from exc
    return True


async def delete_a_records(hostname: str) -> int:
    """Delete every A record of the name; how many were deleted (0 when DNS is not configured)."""
    if not is_configured() or not is_valid_label(hostname):
        return 0
    name = make_fqdn(hostname, get_settings().dns_base_domain)
    deleted = 0
    try:
        async with _client() as client:
            records = _result(await client.get("/dns_records", params={"type": "A", "name": name}))
            for record in records if isinstance(records, list) else []:
                _result(await client.delete(f"/dns_records/{record['id']}"))
                deleted += 1
    except httpx.HTTPError as exc:
        raise DnsError(f"Cloudflare could not be reached: {exc}") from exc
    return deleted


async def check_access() -> None:
    """Read one A record of the zone (`decabill doctor`): the token must be allowed to see the zone's DNS
    records. Raises `DnsError`; call only when `is_configured()`."""
    try:
        async with _client() as client:
            _result(await client.get("/dns_records", params={"type": "A", "per_page": 5}))
    except httpx.HTTPError as exc:
        raise DnsError(f"Cloudflare could not be reached: {exc}") from exc
