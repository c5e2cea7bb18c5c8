"""Fake Cloudflare API v4, DNS records subset, as a Starlette app.

Base URL shape: ``{base}/client/v4`` (real: https://api.cloudflare.com/client/v4).
Every response uses the v4 envelope ``{"success", "errors", "messages", "result"}`` (+ ``result_info`` on lists).

Quirks honoured:
  * ``GET .../dns_records`` accepts both ``name=<fqdn>`` (plain httpx, as in the reference) and
    ``name.exact=<fqdn>`` (what the official ``cloudflare`` SDK sends), plus ``type``, ``content``.
  * ``?page=`` is honoured and a page past the end is EMPTY: the official SDK's auto-pagination asks for
    page+1 until it gets an empty page, so ignoring ``page`` would make it loop forever.
  * A name without the zone suffix gets it appended when the zone name is known (``state.zones``).

Test knobs on :class:`CloudflareState`: ``records`` (id -> record), ``zones`` (zone_id -> zone name),
``fail_next(status, code, message)``, ``requests`` log.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._common import FakeState, JsonGuard, has_bearer, page_slice


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # "2014-01-01T05:20:00.12345Z"


class CloudflareState(FakeState):
    TOKEN = "cf-test-token"
    ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
    ZONE_NAME = "decabill.test"

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.records: dict[str, dict[str, Any]] = {}
            # Known zones. Unknown zone ids are accepted too (zone name then taken from the record name);
            # set strict_zones = True to get Cloudflare's 404 for them.
            self.zones: dict[str, str] = {self.ZONE_ID: self.ZONE_NAME}
            self.strict_zones = False

    def fail_next(self, status: int, code: int = 10000, message: str = "injected error", *, times: int = 1,
                  method: str | None = None) -> None:
        self._inject(status=status, code=code, message=message, times=times, method=method)


def _ok(result: Any, status: int = 200, result_info: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return JSONResponse(body, status)


def _fail(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "errors": [{"code": code, "message": message}], "messages": [],
                         "result": None}, status)


def create_app(state: CloudflareState) -> Starlette:
    def refuse(request: Request) -> JSONResponse | None:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _fail(400, 6003, "Invalid request headers")
        return None if has_bearer(request, state.token) else _fail(403, 10000, "Authentication error")

    def unknown_zone(request: Request) -> JSONResponse | None:
        zone = request.path_params["zone"]
        if state.strict_zones and zone not in state.zones:
            return _fail(404, 7003, "Could not route to /zones/" + zone + ", perhaps your object identifier is invalid?")
        return None

    guarded = JsonGuard(
        state, refuse=refuse, then=unknown_zone,
        invalid_json=lambda: _fail(400, 9207, "Request body is invalid."),
        injected=lambda err: _fail(err["status"], err["code"], err["message"]),
    )

    def _fqdn(zone: str, name: str) -> str:
        name = name.rstrip(".").lower()
        zone_name = state.zones.get(zone)
        if name == "@" and zone_name:
            return zone_name
        if zone_name and name != zone_name and not name.endswith("." + zone_name):
            return f"{name}.{zone_name}"
        return name

    @guarded
    async def create_record(request: Request, body: Any):
        zone = request.path_params["zone"]
        body = body if isinstance(body, dict) else {}
        rtype, name, content = body.get("type"), body.get("name"), body.get("content")
        if not rtype or not name or content is None:
            return _fail(400, 9000, "DNS record type, name and content are required.")
        if rtype == "A":
            try:
                ipaddress.IPv4Address(content)
            except ValueError:
                return _fail(400, 9005, "Content for A record must be a valid IPv4 address.")
        with state.lock:
            fqdn = _fqdn(zone, name)
            if any(r["zone_id"] == zone and r["type"] == rtype and r["name"] == fqdn and r["content"] == content
                   for r in state.records.values()):
                return _fail(400, 81058, "An identical record already exists.")
            now = _now_iso()
            rec = {
                "id": uuid.uuid4().hex, "zone_id": zone, "zone_name": state.zones.get(zone, fqdn.split(".", 1)[-1]),
                "name": fqdn, "type": rtype, "content": content,
                "proxiable": rtype in ("A", "AAAA", "CNAME"), "proxied": bool(body.get("proxied", False)),
                "ttl": int(body.get("ttl", 1)),  # 1 = "automatic"
                "settings": {}, "meta": {}, "comment": body.get("comment"), "tags": body.get("tags") or [],
                "created_on": now, "modified_on": now,
            }
            state.records[rec["id"]] = rec
            return _ok(dict(rec))

    @guarded
    async def list_records(request: Request, _body: Any):
        zone, q = request.path_params["zone"], request.query_params
        name = q.get("name.exact", q.get("name"))
        with state.lock:
            items = [dict(r) for r in state.records.values()
                     if r["zone_id"] == zone
                     and q.get("type") in (None, r["type"])
                     and (name is None or _fqdn(zone, name) == r["name"])
                     and q.get("content", q.get("content.exact")) in (None, r["content"])]
        page, per_page, chunk = page_slice(request, items, default=100, smallest=5, largest=5000000)
        return _ok(chunk, result_info={"page": page, "per_page": per_page, "count": len(chunk),
                                       "total_count": len(items), "total_pages": max(-(-len(items) // per_page), 1)})

    def _record(request: Request) -> dict[str, Any] | None:
        rec = state.records.get(request.path_params["id"])
        return rec if rec is not None and rec["zone_id"] == request.path_params["zone"] else None

    @guarded
    async def get_record(request: Request, _body: Any):
        with state.lock:
            rec = _record(request)
            return _ok(dict(rec)) if rec is not None else _fail(404, 81044, "Record does not exist.")

    @guarded
    async def delete_record(request: Request, _body: Any):
        with state.lock:
            rec = _record(request)
            if rec is None:
                return _fail(404, 81044, "Record does not exist.")
            del state.records[rec["id"]]
            return _ok({"id": rec["id"]})

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _fail(exc.status_code, 7000, "No route for that URI")

    base = "/client/v4/zones/{zone}/dns_records"
    return Starlette(
        routes=[
            Route(base, create_record, methods=["POST"]),
            Route(base, list_records, methods=["GET"]),
            Route(base + "/{id}", get_record, methods=["GET"]),
            Route(base + "/{id}", delete_record, methods=["DELETE"]),
        ],
        exception_handlers={HTTPException: not_found},
    )
