"""The EU's VIES VAT number check, REST API (https://ec.europa.eu/taxation_customs/vies/rest-api).

Wire format:
  POST /check-vat-number  {"countryCode": "FR", "vatNumber": "40303265045",
                           "requesterMemberStateCode": "DE", "requesterNumber": "123456789"}
  200 {"countryCode", "vatNumber", "requestDate": "2026-12-04T14:00:00.000Z", "valid": true|false,
       "requestIdentifier": "WAPIAAAA...", "name", "address", "traderName": "---", ... "traderNameMatch": ...}
       (`requestIdentifier` only when a requester was given; "---" where a register withholds data)
  an error: {"actionSucceed": false, "errorWrappers": [{"error": "MS_UNAVAILABLE", "message": "..."}]}
       INVALID_INPUT (400) for a malformed request; MS_UNAVAILABLE, MS_MAX_CONCURRENT_REQ, SERVICE_UNAVAILABLE
       (500 here) when a member state's register or VIES itself cannot answer.

State: `registered` maps "FR40303265045" → (name, address); everything else is answered `valid: false`.
`fail_next(error="MS_UNAVAILABLE", times=n, status=500)` makes the next n checks fail that way.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._common import FakeState, JsonGuard


def _error(code: str, status: int, message: str | None = None) -> JSONResponse:
    return JSONResponse({"actionSucceed": False, "errorWrappers": [{"error": code, "message": message or code}]},
                        status_code=status)


class ViesState(FakeState):
    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.registered: dict[str, tuple[str, str]] = {}
            self._numbers = itertools.count(1)

    def register(self, vat_id: str, name: str = "Example SARL", address: str = "1 Rue de la Paix\n75002 Paris") -> None:
        with self.lock:
            self.registered[vat_id] = (name, address)

    def fail_next(self, error: str = "MS_UNAVAILABLE", *, times: int = 1, status: int = 500) -> None:
        self._inject(times=times, error=error, status=status)

    def checks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [entry["json"] for entry in self.requests if entry["path"] == "/check-vat-number"]


def create_app(state: ViesState) -> Starlette:
    guard = JsonGuard(state, invalid_json=lambda: _error("INVALID_INPUT", 400), refuse=lambda request: None,
                      injected=lambda err: _error(err["error"], err["status"]))

    @guard
    async def check_vat_number(request: Request, body: Any) -> Response:
        if not isinstance(body, dict) or not body.get("countryCode") or not body.get("vatNumber"):
            return _error("INVALID_INPUT", 400)
        country, number = str(body["countryCode"]), str(body["vatNumber"])
        with state.lock:
            found = state.registered.get(country + number)
            serial = next(state._numbers)
        answer: dict[str, Any] = {
            "countryCode": country, "vatNumber": number,
            "requestDate": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "valid": found is not None, "name": found[0] if found else "---", "address": found[1] if found else "---",
            "traderName": "---", "traderStreet": "---", "traderPostalCode": "---", "traderCity": "---",
            "traderCompanyType": "---", "traderNameMatch": "NOT_PROCESSED", "traderStreetMatch": "NOT_PROCESSED",
            "traderPostalCodeMatch": "NOT_PROCESSED", "traderCityMatch": "NOT_PROCESSED",
            "traderCompanyTypeMatch": "NOT_PROCESSED",
        }
        if body.get("requesterMemberStateCode") and body.get("requesterNumber"):
            answer["requestIdentifier"] = f"WAPIAAAAZ{serial:07d}"
        return JSONResponse(answer)

    return Starlette(routes=[Route("/check-vat-number", check_vat_number, methods=["POST"])])
