"""The EU's VIES VAT number check over its REST API (POST {VIES_API_URL}/check-vat-number).

Request: `{"countryCode": "FR", "vatNumber": "40303265045", "requesterMemberStateCode": "DE",
"requesterNumber": "123456789"}` — the requester (BILLING_ISSUER_VAT_ID) makes VIES answer with a
`requestIdentifier`, the consultation number that proves the check. Answer: `valid`, `requestDate`,
`requestIdentifier`, `name`, `address`. VIES relays to the member states' registers; when one is down it
answers an error wrapper (`{"actionSucceed": false, "errorWrappers": [{"error": "MS_UNAVAILABLE", ...}]}`),
which — like a timeout or a 5xx — means "unknown for now", never "invalid".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import httpx
import structlog

from decabill.config import get_settings

log = structlog.get_logger("decabill.taxes")

@dataclass(frozen=True)
class ViesAnswer:
    available: bool
    valid: bool = False
    request_identifier: str | None = None
    request_date: dt.datetime | None = None
    name: str | None = None
    error: str | None = None


def _date(value: object) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _errors(body: dict) -> list[str]:
    return [str(wrapper.get("error")) for wrapper in body.get("errorWrappers") or [] if isinstance(wrapper, dict)]


async def check(country_prefix: str, number: str) -> ViesAnswer:
    """Ask VIES about `number` (without its country prefix)."""
    settings = get_settings()
    payload = {"countryCode": country_prefix, "vatNumber": number}
    requester = "".join((settings.billing_issuer_vat_id or "").split()).upper()
    if len(requester) > 2 and requester[:2].isalpha():
        payload |= {"requesterMemberStateCode": requester[:2], "requesterNumber": requester[2:]}
    try:
        async with httpx.AsyncClient(timeout=settings.vies_timeout_seconds) as client:
            response = await client.post(f"{settings.vies_api_url.rstrip('/')}/check-vat-number", json=payload)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("taxes.vies_unreachable", error=str(exc))
        return ViesAnswer(available=False, error=type(exc).__name__)
    errors = _errors(body) if isinstance(body, dict) else ["UNREADABLE"]
    if errors or response.status_code >= 400 or not isinstance(body, dict) or "valid" not in body:
        error = errors[0] if errors else f"HTTP {response.status_code}"
        if error == "INVALID_INPUT":  # VIES refused the number's format outright
            return ViesAnswer(available=True, valid=False, error=error)
        log.warning("taxes.vies_unavailable", error=error)
        return ViesAnswer(available=False, error=error)
    return ViesAnswer(available=True, valid=body.get("valid") is True,
                      request_identifier=(body.get("requestIdentifier") or None),
                      request_date=_date(body.get("requestDate")), name=body.get("name") or None)
