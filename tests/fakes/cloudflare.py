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
import json
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # "2014-01-01T05:20:00.12345Z"


class CloudflareState:
    TOKEN = "cf-test-token"
    ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
    ZONE_NAME = "decabill.test"

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.records: dict[str, dict[str, Any]] = {}
            # Known zones. Unknown zone ids are accepted too (zone name then taken from the record name);
            # set strict_zones = True to get Cloudflare's 404 for them.
            self.zones: dict[str, str] = {self.ZONE_ID: self.ZONE_NAME}
            self.strict_zones = False
            self.requests: list[dict[str, Any]] = []
            self._errors: list[dict[str, Any]] = []

    def fail_next(self, status: int, code: int = 10000, message: str = "injected error", *, times: int = 1,
                  method: str | None = None) -> None:
        with self.lock:
            self._errors.append({"status": status, "code": code, "message": message, "times": times, "method": method})

    def _take_error(self, method: str) -> dict[str, Any] | None:
        for err in self._errors:
            if err["method"] in (None, method):
                err["times"] -= 1
                if err["times"] <= 0:
                    self._errors.remove(err)
                return err
        return None


def _ok(result: Any, status: int = 200, result_info: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return JSONResponse(body, status)


def _fail(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "errors": [{"code": code, "message": message}], "messages": [],
                         "result": None}, status)


def create_app(state: CloudflareState) -> Starlette:
    async def guard(request: Request) -> tuple[Any, JSONResponse | None]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return None, _fail(400, 9207, "Request body is invalid.")
        path, root = request.scope["path"], request.scope.get("root_path", "")
        path = path[len(root):] if root and path.startswith(root) else path
        with state.lock:
            state.requests.append({"method": request.method, "path": path, "query": dict(request.query_params),
                                   "json": body, "headers": dict(request.headers)})
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return body, _fail(400, 6003, "Invalid request headers")
            if auth != f"Bearer {state.token}":
                return body, _fail(403, 10000, "Authentication error")
            injected = state._take_error(request.method)
            if injected:
                return body, _fail(injected["status"], injected["code"], injected["message"])
            zone = request.path_params["zone"]
            if state.strict_zones and zone not in state.zones:
                return body, _fail(404, 7003, "Could not route to /zones/" + zone + ", perhaps your object identifier is invalid?")
        return body, None

    def _fqdn(zone: str, name: str) -> str:
        name = name.rstrip(".").lower()
        zone_name = state.zones.get(zone)
        if name == "@" and zone_name:
            return zone_name
        if zone_name and name != zone_name and not name.endswith("." + zone_name):
            return f"{name}.{zone_name}"
        return name

    async def create_record(request: Request):
        body, e = await guard(request)
        if e:
            return e
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

    async def list_records(request: Request):
        _, e = await guard(request)
        if e:
            return e
        zone, q = request.path_params["zone"], request.query_params
        name = q.get("name.exact", q.get("name"))
        page = max(int(q.get("page", 1)), 1)
        per_page = min(max(int(q.get("per_page", 100)), 5), 5000000)
        with state.lock:
            items = [dict(r) for r in state.records.values()
                     if r["zone_id"] == zone
                     and q.get("type") in (None, r["type"])
                     and (name is None or _fqdn(zone, name) == r["name"])
                     and q.get("content", q.get("content.exact")) in (None, r["content"])]
        chunk = items[(page - 1) * per_page: page * per_page]
        return _ok(chunk, result_info={"page": page, "per_page": per_page, "count": len(chunk),
                                       "total_count": len(items), "total_pages": max(-(-len(items) // per_page), 1)})

    async def get_record(request: Request):
        _, e = await guard(request)
        if e:
            return e
        with state.lock:
            rec = state.records.get(request.path_params["id"])
            if rec is None or rec["zone_id"] != request.path_params["zone"]:
                return _fail(404, 81044, "Record does not exist.")
            return _ok(dict(rec))

    async def delete_record(request: Request):
        _, e = await guard(request)
        if e:
            return e
        with state.lock:
            rec = state.records.get(request.path_params["id"])
            if rec is None or rec["zone_id"] != request.path_params["zone"]:
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
