"""Sending deliveries: claim a due delivery in a short transaction, POST the signed event without holding
one, then record the attempt (the delivery log) and plan the next.

* at least once: a claim moves `next_attempt_at` past the request's time limit, so a worker that dies
  mid-request leaves the delivery due again for `webhooks.deliver_due`;
* retries after WEBHOOK_RETRY_SCHEDULE (about three days by default), then the delivery is `failed`;
* an endpoint that has failed without a success for WEBHOOK_DISABLE_AFTER_DAYS is disabled and the admin mailed;
* the SSRF guard: only http(s) (https in production), never an address inside the network unless
  WEBHOOK_ALLOW_PRIVATE_TARGETS (tests), the request goes to the very address that was checked (no second DNS
  lookup to rebind), bounded time, redirects are not followed (a 3xx is a failure).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from decabill import db, secrets
from decabill.config import get_settings
from decabill.email import Mail, send_after_commit
from decabill.identity import service as identity
from decabill.tenancy import current_tenant
from decabill.webhooks import signing
from decabill.webhooks.errors import WebhookUrlRefused
from decabill.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository, WebhookEventRepository
from models.webhooks import DeliveryStatus, WebhookEndpoint, WebhookEvent

EXCERPT_CHARS = 1000
MAX_READ_BYTES = 64 * 1024
USER_AGENT = "Decabill-Webhooks/1"


# --- the SSRF guard -----------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """The form of a target URL (no network involved; `create`/`update` check this): http(s) with a host, https in
    production, no credentials, and — unless WEBHOOK_ALLOW_PRIVATE_TARGETS — not a literal private or loopback
    address or `localhost`."""
    parts = urlsplit(url)
    try:
        hostname, _port = parts.hostname, parts.port
    except ValueError:
        hostname = None
    if parts.scheme not in ("http", "https") or not hostname:
        raise WebhookUrlRefused("The webhook URL must be an absolute http(s) URL")
    if parts.scheme != "https" and get_settings().is_production:
        raise WebhookUrlRefused("The webhook URL must use https")
    if parts.username or parts.password:
        raise WebhookUrlRefused("The webhook URL must not carry credentials")
    if not get_settings().webhook_allow_private_targets and _names_the_inside(hostname):
        raise WebhookUrlRefused(INSIDE)
    return url


INSIDE = "The webhook URL points inside the network (private or loopback address)"


def _names_the_inside(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        return _inside_the_network(hostname)
    except ValueError:
        return False  # a name: resolved before every attempt


def _inside_the_network(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def check_target(url: str) -> str | None:
    """Before every attempt: `check_url`, then resolve the host once and refuse it when any of its addresses is
    private, loopback, link-local or otherwise not public (unless WEBHOOK_ALLOW_PRIVATE_TARGETS). Returns the
    checked address the attempt connects to: pinned, so that a second DNS answer (rebinding) cannot send the
    request somewhere else; None for a literal address (checked by `check_url`) or when private targets are
    allowed."""
    check_url(url)
    if get_settings().webhook_allow_private_targets:
        return None
    hostname = urlsplit(url).hostname
    try:
        ipaddress.ip_address(hostname.split("%", 1)[0])
        return None
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(hostname, urlsplit(url).port or 443,
                                                            type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise WebhookUrlRefused(f"The webhook host {hostname} cannot be resolved") from None
    if not found or any(_inside_the_network(info[4][0]) for info in found):
        raise WebhookUrlRefused(INSIDE)
    return found[0][4][0]


def _pinned(request: httpx.Request, address: str) -> httpx.Request:
    """`request` sent to `address` while it still names its host: the Host header (set by httpx from the URL
    when the request was built) and, for https, the TLS server name and the certificate check (httpcore's
    `sni_hostname` extension) stay the hostname's."""
    hostname = request.url.host
    request.url = request.url.copy_with(host=address)
    if request.url.scheme == "https":
        request.extensions["sni_hostname"] = hostname
    return request


# --- one attempt --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    status: int | None
    duration_ms: int
    excerpt: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def envelope(event: WebhookEvent) -> bytes:
    """The body every endpoint receives for an event (the `WebhookEvent` schema), byte for byte what is signed."""
    created = event.created_at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return json.dumps({"id": str(event.id), "type": event.type, "createdAt": created, "tenant": event.tenant_id,
                       "data": event.payload}, separators=(",", ":"), sort_keys=True).encode()


async def post(url: str, secret: str, event: WebhookEvent, body: bytes) -> Attempt:
    settings = get_settings()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               signing.HEADER: signing.signature_header(secret, body),
               "Decabill-Event-Id": str(event.id), "Decabill-Event-Type": event.type}
    started = time.monotonic()
    try:
        address = await check_target(url)
        async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False,
                                     trust_env=False) as client:
            request = client.build_request("POST", url, content=body, headers=headers)
            if address is not None:
                request = _pinned(request, address)
            response = await client.send(request, stream=True)
            received = b""
            try:
                async for chunk in response.aiter_bytes():  # read a bounded part of whatever comes back
                    received += chunk
                    if len(received) >= MAX_READ_BYTES:
                        break
            finally:
                await response.aclose()
        excerpt = received[:EXCERPT_CHARS * 4].decode(errors="replace")[:EXCERPT_CHARS]
        return Attempt(response.status_code, _ms_since(started), excerpt)
    except WebhookUrlRefused as refused:
        return Attempt(None, _ms_since(started), error=refused.message[:500])
    except httpx.HTTPError as exc:
        return Attempt(None, _ms_since(started), error=f"{type(exc).__name__}: {exc}"[:500])


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# --- the unit of work ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    attempt_number: int
    url: str
    secret: str
    event: WebhookEvent


def _claim_time() -> dt.timedelta:
    """How long a claimed delivery stays invisible to others: longer than any request may take."""
    return dt.timedelta(seconds=get_settings().webhook_timeout_seconds * 2 + 60)


async def _claim(delivery_id: uuid.UUID) -> _Claimed | None:
    async with db.transaction() as session:
        delivery = await WebhookDeliveryRepository(session).get(delivery_id, for_update=True, skip_locked=True)
        now = db.utcnow()
        if (delivery is None or delivery.status != DeliveryStatus.PENDING
                or (delivery.next_attempt_at is not None and delivery.next_attempt_at > now)):
            return None
        endpoint = await WebhookEndpointRepository(session).get(delivery.endpoint_id)
        event = await WebhookEventRepository(session).get(delivery.event_id)
        if endpoint is None or event is None:
            return None
        if not endpoint.enabled:
            delivery.status, delivery.next_attempt_at, delivery.error = DeliveryStatus.FAILED, None, "endpoint disabled"
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + _claim_time()
        return _Claimed(delivery.attempts, endpoint.url, secrets.decrypt(endpoint.secret) or "", event)


async def deliver(delivery_id: uuid.UUID) -> str:
    """One attempt of a due delivery (a no-op when it is not due, done, or claimed by another worker)."""
    claimed = await _claim(delivery_id)
    if claimed is None:
        return "skipped"
    attempt = await post(claimed.url, claimed.secret, claimed.event, envelope(claimed.event))
    return await _record(delivery_id, claimed.attempt_number, attempt)


async def _record(delivery_id: uuid.UUID, attempt_number: int, attempt: Attempt) -> str:
    settings = get_settings()
    async with db.transaction() as session:
        delivery = await WebhookDeliveryRepository(session).get(delivery_id, for_update=True, reload=True)
        if delivery is None or delivery.attempts != attempt_number:
            return "superseded"  # redelivered meanwhile: the newer attempt writes the log
        endpoint = await WebhookEndpointRepository(session).get(delivery.endpoint_id, for_update=True, reload=True)
        now = db.utcnow()
        delivery.last_attempt_at = now
        delivery.response_status, delivery.duration_ms = attempt.status, attempt.duration_ms
        delivery.response_excerpt, delivery.error = attempt.excerpt, attempt.error
        delivery.touch()
        if attempt.succeeded:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, None
            if endpoint is not None:
                endpoint.failing_since = None
            return DeliveryStatus.SUCCEEDED
        schedule = settings.webhook_retry_schedule
        if delivery.attempts <= len(schedule):
            delivery.next_attempt_at = now + dt.timedelta(seconds=schedule[delivery.attempts - 1])
        else:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
        if endpoint is not None:
            await _note_failure(endpoint, now)
        return delivery.status


async def _note_failure(endpoint: WebhookEndpoint, now: dt.datetime) -> None:
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        return
    days = get_settings().webhook_disable_after_days
    if endpoint.enabled and now - endpoint.failing_since >= dt.timedelta(days=days):
        endpoint.enabled = False
        endpoint.disabled_reason = f"disabled after failing for {days:g} days without a success"
        endpoint.touch()
        for address in await _alert_recipients():
            send_after_commit(Mail(
                to=address, subject="Webhook endpoint disabled",
                text=(f"The webhook endpoint {endpoint.url} (ID {endpoint.id}, tenant {current_tenant()}) has failed "
                      f"every delivery since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC and was disabled.\n\n"
                      "Fix the receiver, enable the endpoint again (PATCH /api/admin/webhook-endpoints/{id} with "
                      '{"enabled": true}) and redeliver the failed deliveries from its delivery log.'),
            ))


async def _alert_recipients() -> list[str]:
    configured = get_settings().webhook_alert_email
    return [configured] if configured else await identity.admin_emails()


async def due_deliveries(batch_size: int) -> list[uuid.UUID]:
    """Ids of the current tenant's deliveries whose time has come (new ones not sent yet, retries, abandoned
    claims)."""
    async with db.transaction() as session:
        return await WebhookDeliveryRepository(session).due_ids(db.utcnow(), batch_size)
