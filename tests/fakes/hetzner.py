"""Fake Hetzner Cloud API v1 (the subset Decabill uses), as a Starlette app.

Speaks the real wire format so the real ``hcloud`` library (2.27) works unmodified:

    hcloud.Client(token=HetznerState.TOKEN, api_endpoint=f"{base}/v1", poll_interval=0.01)

Shapes follow docs.hetzner.cloud; the comments say which hcloud behaviour a detail satisfies.
Errors are ``{"error": {"code", "message", "details"}}``: hcloud raises ``APIException``
with ``.code`` taken from the BODY (the HTTP status is ignored when a body is present).

Test knobs on :class:`HetznerState`:
  * ``capacity[(server_type, location)] = False`` -> POST /v1/servers fails (412 resource_unavailable)
  * ``max_servers = n``                             -> creating server n+1 fails (403 resource_limit_exceeded);
                                                       also enables GET /v1/limits
  * ``fail_next(code, status)``                     -> inject an error for the next matching request(s)
  * ``rate_limit()``                                -> inject 429 rate_limit_exceeded. NOTE: hcloud RETRIES the
      codes rate_limit_exceeded, conflict, bad_gateway, timeout (and HTTP 502/504) up to 5 times with
      exponential backoff starting at ~1 s. Inject a non-retried code (e.g. "service_error" 503,
      "locked" 423) for fast failure tests.
  * ``action_polls = n``                            -> actions report "running" for n polls before "success"
  * ``fail_next_action(code, message)``             -> the next action created finishes with status "error"
  * ``requests``                                    -> log of {method, path, query, json, headers}
"""

from __future__ import annotations

import copy
import secrets
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._common import FakeState, JsonGuard, by_int_id, has_bearer, json_response, page_slice, public


def _now_iso() -> str:
    # hcloud parses with dateutil.isoparse -> must be ISO 8601 ("2016-01-30T23:50:00+00:00" like Hetzner).
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _price(net: float, vat: float = 0.19) -> dict[str, str]:
    # Hetzner returns decimal STRINGS, net and gross (gross = incl. 19 % German VAT for the default account).
    return {"net": f"{net:.10f}", "gross": f"{net * (1 + vat):.10f}"}


# --- static catalogue -------------------------------------------------------------------------

LOCATIONS: dict[str, dict[str, Any]] = {
    "fsn1": {"id": 1, "name": "fsn1", "description": "Falkenstein DC Park 1", "country": "DE",
             "city": "Falkenstein", "latitude": 50.47612, "longitude": 12.370071, "network_zone": "eu-central"},
    "nbg1": {"id": 2, "name": "nbg1", "description": "Nuremberg DC Park 1", "country": "DE",
             "city": "Nuremberg", "latitude": 49.452102, "longitude": 11.076665, "network_zone": "eu-central"},
    "hel1": {"id": 3, "name": "hel1", "description": "Helsinki DC Park 1", "country": "FI",
             "city": "Helsinki", "latitude": 60.169855, "longitude": 24.938379, "network_zone": "eu-central"},
}
DATACENTERS = {"fsn1": ("fsn1-dc14", 4), "nbg1": ("nbg1-dc3", 2), "hel1": ("hel1-dc2", 3)}

_DEPRECATION = {"announced": "2024-06-06T06:00:00+00:00", "unavailable_after": "2024-09-06T06:00:00+00:00"}
_TRAFFIC = 21990232555520  # 20 TB in bytes, per price entry

# name -> (id, description, cores, memory GB, disk GB, cpu_type, architecture, category, monthly net EUR,
#          hourly net EUR (the monthly price is the cap), locations, deprecated)
_TYPES = [
    ("cx22", 104, "CX22", 2, 4.0, 40, "shared", "x86", "cost_optimized", 3.79, 0.0060, ["fsn1", "nbg1", "hel1"], False),
    ("cx32", 105, "CX32", 4, 8.0, 80, "shared", "x86", "cost_optimized", 6.80, 0.0109, ["fsn1", "nbg1"], False),
    ("cpx11", 22, "CPX 11", 2, 2.0, 40, "shared", "x86", "regular_purpose", 4.35, 0.0070, ["fsn1", "hel1"], False),
    ("cax11", 45, "CAX11", 2, 4.0, 40, "shared", "arm", "cost_optimized", 3.79, 0.0060, ["fsn1", "nbg1"], False),
    ("cx11", 1, "CX11", 1, 2.0, 20, "shared", "x86", "cost_optimized", 3.29, 0.0052, ["fsn1", "nbg1", "hel1"], True),
]


def _build_server_types() -> dict[str, dict[str, Any]]:
    out = {}
    for name, tid, desc, cores, mem, disk, cpu, arch, cat, monthly, hourly, locs, deprecated in _TYPES:
        out[name] = {
            "id": tid, "name": name, "description": desc, "category": cat, "cores": cores, "memory": mem,
            "disk": disk, "storage_type": "local", "cpu_type": cpu, "architecture": arch,
            "deprecated": deprecated, "deprecation": dict(_DEPRECATION) if deprecated else None,
            "prices": [
                {"location": loc, "price_hourly": _price(hourly), "price_monthly": _price(monthly),
                 "included_traffic": _TRAFFIC, "price_per_tb_traffic": _price(1.0)}
                for loc in locs
            ],
            # filled per request (availability depends on state.capacity); hcloud requires each entry
            # to carry id, name, deprecation, available, recommended.
            "locations": [],
        }
    return out


SERVER_TYPES = _build_server_types()


class HetznerState(FakeState):
    """Mutable state of the fake; safe to poke from the test thread (all access under ``lock``)."""

    TOKEN = "hetzner-test-token"

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.servers: dict[int, dict[str, Any]] = {}
            self.actions: dict[int, dict[str, Any]] = {}
            # (server_type, location) -> bool; missing key = available if the type is priced there
            self.capacity: dict[tuple[str, str], bool] = {}
            self.capacity_error: tuple[str, int] = ("resource_unavailable", 412)
            self.max_servers: int | None = None
            self.action_polls = 0
            self._action_errors: list[dict[str, str]] = []
            self._next_server_id = 42000001
            self._next_action_id = 13000001
            self._polls: dict[int, int] = {}

    # --- injection helpers ---
    def fail_next(self, code: str, status: int, message: str | None = None, *, times: int = 1,
                  method: str | None = None, path: str | None = None, details: Any = None) -> None:
        """Make the next ``times`` requests (optionally only those with ``method`` / containing ``path``)
        fail with ``{"error": {"code": code, ...}}`` and HTTP ``status``."""
        self._inject(code=code, status=status, message=message or f"injected {code}", details=details,
                     times=times, method=method, path=path)

    def rate_limit(self, times: int = 1) -> None:
        # Real body + status; hcloud retries this code (see module docstring).
        self.fail_next("rate_limit_exceeded", 429, "limit of 3600 requests per hour reached", times=times)

    def fail_next_action(self, code: str = "action_failed", message: str = "Action failed") -> None:
        with self.lock:
            self._action_errors.append({"code": code, "message": message})

    def set_status(self, server_id: int, status: str) -> None:
        with self.lock:
            self.servers[server_id]["status"] = status

    # --- internals ---
    def available(self, server_type: str, location: str) -> bool:
        st = SERVER_TYPES.get(server_type)
        if st is None or st["deprecated"] or location not in {p["location"] for p in st["prices"]}:
            return False
        return self.capacity.get((server_type, location), True)

    def server_type_json(self, name: str) -> dict[str, Any]:
        st = copy.deepcopy(SERVER_TYPES[name])
        st["locations"] = [
            {"id": LOCATIONS[p["location"]]["id"], "name": p["location"], "deprecation": st["deprecation"],
             "available": self.available(name, p["location"]), "recommended": not st["deprecated"]}
            for p in st["prices"]
        ]
        return st

    def new_action(self, command: str, server_id: int | None) -> dict[str, Any]:
        aid = self._next_action_id
        self._next_action_id += 1
        action = {"id": aid, "command": command, "status": "running", "progress": 0, "started": _now_iso(),
                  "finished": None, "error": None,
                  "resources": [{"id": server_id, "type": "server"}] if server_id else []}
        if self._action_errors:
            action["_fail"] = self._action_errors.pop(0)
        self.actions[aid] = action
        self._polls[aid] = 0
        return action

    def poll_action(self, aid: int) -> dict[str, Any]:
        action = self.actions[aid]
        if action["status"] == "running":
            self._polls[aid] += 1
            if self._polls[aid] > self.action_polls:
                fail = action.pop("_fail", None)
                action.update(status="error" if fail else "success", progress=100, finished=_now_iso(), error=fail)
        return public(action)


# --- HTTP layer ----------------------------------------------------------------------------------

def _err(code: str, message: str, status: int, details: Any = None) -> JSONResponse:
    return json_response({"error": {"code": code, "message": message, "details": details}}, status,
                         {"RateLimit-Limit": "3600", "RateLimit-Remaining": "0"})


def _paginate(request: Request, key: str, items: list[Any]) -> JSONResponse:
    # hcloud's get_all() follows meta.pagination.next_page until it is null.
    page, per_page, chunk = page_slice(request, items, default=25, smallest=1, largest=50)
    total = len(items)
    last = max((total + per_page - 1) // per_page, 1)
    return JSONResponse({key: chunk, "meta": {"pagination": {
        "page": page, "per_page": per_page, "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < last else None, "last_page": last, "total_entries": total}}})


def _label_match(labels: dict[str, str], selector: str) -> bool:
    # Supports the label_selector forms "k=v", "k!=v", "k", "!k" (comma = AND).
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def create_app(state: HetznerState) -> Starlette:
    def refuse(request: Request) -> JSONResponse | None:
        return None if has_bearer(request, state.token) else _err("unauthorized", "unable to authenticate", 401)

    # Every endpoint: parse the JSON body, log the request, check the token, apply injected errors.
    guarded = JsonGuard(
        state, refuse=refuse,
        invalid_json=lambda: _err("json_error", "invalid JSON in request body", 400),
        injected=lambda err: _err(err["code"], err["message"], err["status"], err["details"]),
    )

    def _find(request: Request, collection: dict[int, Any], what: str) -> tuple[Any, JSONResponse | None]:
        obj = by_int_id(collection, request.path_params["id"])
        if obj is None:
            return None, _err("not_found", f"{what} with ID '{request.path_params['id']}' not found", 404)
        return obj, None

    # --- catalogue ---
    @guarded
    async def server_types(request: Request, _body: Any):
        name = request.query_params.get("name")
        with state.lock:
            items = [state.server_type_json(n) for n in SERVER_TYPES if name in (None, n)]
        return _paginate(request, "server_types", sorted(items, key=lambda t: t["id"]))

    @guarded
    async def server_type(request: Request, _body: Any):
        with state.lock:
            for n, st in SERVER_TYPES.items():
                if str(st["id"]) == request.path_params["id"]:
                    return JSONResponse({"server_type": state.server_type_json(n)})
        return _err("not_found", "server type not found", 404)

    @guarded
    async def locations(request: Request, _body: Any):
        name = request.query_params.get("name")
        return _paginate(request, "locations", [dict(v) for k, v in LOCATIONS.items() if name in (None, k)])

    @guarded
    async def location(request: Request, _body: Any):
        for loc in LOCATIONS.values():
            if str(loc["id"]) == request.path_params["id"]:
                return JSONResponse({"location": dict(loc)})
        return _err("not_found", "location not found", 404)

    def _dc_json(loc: str) -> dict[str, Any]:
        name, dcid = DATACENTERS[loc]
        supported = [st["id"] for st in SERVER_TYPES.values() if loc in {p["location"] for p in st["prices"]}]
        available = [SERVER_TYPES[n]["id"] for n in SERVER_TYPES if state.available(n, loc)]
        return {"id": dcid, "name": name, "description": f"{LOCATIONS[loc]['city']} DC", "location": dict(LOCATIONS[loc]),
                "server_types": {"supported": supported, "available": available, "available_for_migration": available}}

    @guarded
    async def datacenters(request: Request, _body: Any):
        # Deprecated by Hetzner (changelog 2026-06-02) but still served; hcloud warns on use.
        name = request.query_params.get("name")
        with state.lock:
            items = [_dc_json(loc) for loc in LOCATIONS if name in (None, DATACENTERS[loc][0])]
        return _paginate(request, "datacenters", items)

    @guarded
    async def limits(request: Request, _body: Any):
        # NOT a real Hetzner endpoint (hcloud has no limits call); fake-only, 404 unless max_servers is set.
        with state.lock:
            if state.max_servers is None:
                return _err("not_found", "not found", 404)
            return JSONResponse({"limits": {"servers": {"max": state.max_servers, "used": len(state.servers)}}})

    # --- servers ---
    @guarded
    async def create_server(request: Request, body: Any):
        body = body if isinstance(body, dict) else {}
        name, st_name, image = body.get("name"), body.get("server_type"), body.get("image")
        missing = [f for f, v in (("name", name), ("server_type", st_name), ("image", image)) if not v]
        if missing:
            return _err("invalid_input", f"invalid input in field '{missing[0]}'", 400,
                        {"fields": [{"name": f, "messages": ["Missing data for required field."]} for f in missing]})
        # hcloud sends id_or_name: accept either for server_type and location.
        st = next((s for s in SERVER_TYPES.values() if st_name in (s["name"], s["id"], str(s["id"]))), None)
        if st is None:
            return _err("invalid_input", "server type not found", 400,
                        {"fields": [{"name": "server_type", "messages": ["server type not found"]}]})
        loc_ref = body.get("location")
        if loc_ref is None and body.get("datacenter"):
            loc_ref = str(body["datacenter"]).split("-")[0]
        loc = next((l for l in LOCATIONS.values() if loc_ref in (l["name"], l["id"], str(l["id"]))), None)
        if loc_ref is None:
            loc = LOCATIONS[st["prices"][0]["location"]]
        if loc is None:
            return _err("invalid_input", "location not found", 400,
                        {"fields": [{"name": "location", "messages": ["location not found"]}]})
        with state.lock:
            if any(s["name"] == name for s in state.servers.values()):
                return _err("uniqueness_error", "server name is already used", 409, {"fields": [{"name": "name"}]})
            if state.max_servers is not None and len(state.servers) >= state.max_servers:
                return _err("resource_limit_exceeded", "server limit exceeded", 403,
                            {"limits": [{"name": "server_limit"}]})
            if not state.available(st["name"], loc["name"]):
                code, status = state.capacity_error
                return _err(code, f"server type {st['name']} unavailable in location {loc['name']}", status)
            sid = state._next_server_id
            state._next_server_id += 1
            n = sid % 250 + 2
            pub = body.get("public_net") or {}
            # Loopback, so nothing a test starts (the SSH update job, a health check) ever leaves the machine.
            ipv4 = {"id": sid + 500000, "ip": f"127.0.0.{n}", "blocked": False,
                    "dns_ptr": f"static.{n}.0.0.127.clients.your-server.de"}
            ipv6 = {"id": sid + 600000, "ip": f"2001:db8:{sid % 65536:x}::/64", "blocked": False, "dns_ptr": []}
            dc_name, dc_id = DATACENTERS[loc["name"]]
            start = body.get("start_after_create", True)
            server = {
                "id": sid, "name": name, "status": "running" if start else "off", "created": _now_iso(),
                # hcloud: if public_net is present it must have ipv4, ipv6 and floating_ips (KeyError otherwise);
                # ipv6.ip needs a "/prefix".
                "public_net": {"ipv4": ipv4 if pub.get("enable_ipv4", True) else None,
                               "ipv6": ipv6 if pub.get("enable_ipv6", True) else None,
                               "floating_ips": [], "firewalls": []},
                "private_net": [{"network": net, "ip": f"10.0.{i}.{n}", "alias_ips": [],
                                 "mac_address": f"86:00:00:{sid >> 16 & 255:02x}:{sid >> 8 & 255:02x}:{sid & 255:02x}"}
                                for i, net in enumerate(body.get("networks") or [])],
                "server_type": state.server_type_json(st["name"]),
                # hcloud 2.27 reads server.location; datacenter is kept for older clients / the reference.
                "location": dict(loc),
                "datacenter": {"id": dc_id, "name": dc_name, "description": f"{loc['city']} DC",
                               "location": dict(loc)},
                "image": {"id": 161547269, "type": "system", "status": "available", "name": str(image),
                          "description": str(image), "os_flavor": str(image).split("-")[0], "os_version": None,
                          "architecture": st["architecture"], "rapid_deploy": True, "created": "2024-04-25T12:00:00+00:00",
                          "deprecated": None, "labels": {}, "protection": {"delete": False}, "disk_size": 5,
                          "image_size": None, "bound_to": None, "created_from": None},
                "iso": None, "rescue_enabled": False, "locked": False, "backup_window": None,
                "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": _TRAFFIC,
                "protection": {"delete": False, "rebuild": False}, "labels": body.get("labels") or {},
                "volumes": [], "load_balancers": [], "primary_disk_size": st["disk"], "placement_group": None,
                "_user_data": body.get("user_data"), "_ssh_keys": body.get("ssh_keys") or [],
            }
            state.servers[sid] = server
            action = state.new_action("create_server", sid)
            next_actions = [state.new_action("start_server", sid)] if start else []
            shown = public(server)
            shown["status"] = "initializing"  # as Hetzner: final status shows up on the next GET
            # hcloud needs ALL four keys (KeyError otherwise); root_password is null when ssh_keys were given.
            return JSONResponse({"server": shown, "action": public(action),
                                 "next_actions": [public(a) for a in next_actions],
                                 "root_password": None if server["_ssh_keys"] else secrets.token_urlsafe(12)},
                                status_code=201)

    @guarded
    async def list_servers(request: Request, _body: Any):
        q = request.query_params
        statuses = q.getlist("status")
        with state.lock:
            items = [public(s) for s in sorted(state.servers.values(), key=lambda s: s["id"])
                     if q.get("name") in (None, s["name"])
                     and (not statuses or s["status"] in statuses)
                     and _label_match(s["labels"], q.get("label_selector", ""))]
        return _paginate(request, "servers", items)

    @guarded
    async def get_server(request: Request, _body: Any):
        with state.lock:
            server, e = _find(request, state.servers, "server")
            return e or JSONResponse({"server": public(server)})

    @guarded
    async def delete_server(request: Request, _body: Any):
        with state.lock:
            server, e = _find(request, state.servers, "server")
            if e:
                return e
            del state.servers[server["id"]]
            return JSONResponse({"action": public(state.new_action("delete_server", server["id"]))})

    # Power actions flip the status immediately; the returned action is "running" until polled.
    _POWER = {"poweron": ("start_server", "running"), "poweroff": ("stop_server", "off"),
              "reboot": ("reboot_server", "running"), "reset": ("reset_server", "running"),
              "shutdown": ("shutdown_server", "off")}

    @guarded
    async def server_action(request: Request, _body: Any):
        kind = request.path_params["action"]
        if kind not in _POWER:
            return _err("not_found", f"action '{kind}' not found", 404)
        with state.lock:
            server, e = _find(request, state.servers, "server")
            if e:
                return e
            command, new_status = _POWER[kind]
            server["status"] = new_status
            return JSONResponse({"action": public(state.new_action(command, server["id"]))}, status_code=201)

    @guarded
    async def get_action(request: Request, _body: Any):
        with state.lock:
            action, e = _find(request, state.actions, "action")
            return e or JSONResponse({"action": state.poll_action(action["id"])})

    async def not_found(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            return _err("method_not_allowed", "method not allowed", 405)
        return _err("not_found", "not found", exc.status_code)

    return Starlette(
        routes=[
            Route("/v1/server_types", server_types),
            Route("/v1/server_types/{id}", server_type),
            Route("/v1/locations", locations),
            Route("/v1/locations/{id}", location),
            Route("/v1/datacenters", datacenters),
            Route("/v1/limits", limits),
            Route("/v1/servers", create_server, methods=["POST"]),
            Route("/v1/servers", list_servers, methods=["GET"]),
            Route("/v1/servers/{id}", get_server, methods=["GET"]),
            Route("/v1/servers/{id}", delete_server, methods=["DELETE"]),
            Route("/v1/servers/{id}/actions/{action}", server_action, methods=["POST"]),
            Route("/v1/actions/{id}", get_action),
        ],
        exception_handlers={HTTPException: not_found},
    )
