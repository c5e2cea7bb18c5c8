"""Fake DigitalOcean API v2 (droplets subset), as a Starlette app.

Real shapes from docs.digitalocean.com/reference/api so the real ``pydo`` client (0.44, AutoRest on
azure-core) works unmodified. pydo checks STATUS CODES strictly (anything else -> HttpResponseError):
create droplet 202, droplet action 201, list/get 200, destroy 204. pydo treats 404 as an *expected*
status for droplets.get / destroy / droplet_actions.post: it returns the error JSON without raising.

Point pydo at it (azure-core refuses bearer tokens over plain http, hence the key-credential policy):

    from azure.core.credentials import AzureKeyCredential
    from azure.core.pipeline.policies import AzureKeyCredentialPolicy
    pydo.Client(token, endpoint=base, retry_total=0,
                authentication_policy=AzureKeyCredentialPolicy(AzureKeyCredential(token), "Authorization", prefix="Bearer"))

Errors are ``{"id": ..., "message": ..., "request_id": ...}``.
Test knobs on :class:`DigitalOceanState`: ``capacity[(size, region)] = False`` (422 "Size is not available in
this region."), ``droplet_limit``, ``fail_next(error_id, status)``, ``rate_limit()`` (429; azure-core retries
429/5xx unless ``retry_total=0``), ``new_polls`` (how many GETs a new droplet stays "new" without IPv4),
``requests`` log.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._common import FakeState, JsonGuard, by_int_id, has_bearer, json_response, page_slice, public


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # DO style: "2020-07-21T18:37:44Z"


REGIONS = {
    "fra1": "Frankfurt 1",
    "ams3": "Amsterdam 3",
    "nyc3": "New York 3",
    "sfo3": "San Francisco 3",
}

# slug -> (vcpus, memory MB, disk GB, transfer TB, price_monthly USD, price_hourly USD, regions, available, description)
_SIZES = [
    ("s-1vcpu-1gb", 1, 1024, 25, 1.0, 6.0, 0.00893, ["fra1", "ams3", "nyc3", "sfo3"], True, "Basic"),
    ("s-1vcpu-2gb", 1, 2048, 50, 2.0, 12.0, 0.01786, ["fra1", "ams3", "nyc3", "sfo3"], True, "Basic"),
    ("s-2vcpu-2gb", 2, 2048, 60, 3.0, 18.0, 0.02679, ["fra1", "ams3", "nyc3"], True, "Basic"),
    ("s-2vcpu-4gb", 2, 4096, 80, 4.0, 24.0, 0.03571, ["fra1", "nyc3", "sfo3"], True, "Basic"),
    ("s-4vcpu-8gb", 4, 8192, 160, 5.0, 48.0, 0.07143, ["fra1", "nyc3"], True, "Basic"),
    ("c-2", 2, 4096, 25, 4.0, 42.0, 0.0625, ["nyc3"], False, "CPU-Optimized"),
]
SIZES = {
    slug: {"slug": slug, "memory": mem, "vcpus": vcpus, "disk": disk, "transfer": transfer,
           "price_monthly": pm, "price_hourly": ph, "regions": regions, "available": avail,
           "description": desc, "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}]}
    for slug, vcpus, mem, disk, transfer, pm, ph, regions, avail, desc in _SIZES
}

_MSG_NOT_FOUND = "The resource you were accessing could not be found."


class DigitalOceanState(FakeState):
    TOKEN = "do-test-token"

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.droplets: dict[int, dict[str, Any]] = {}
            self.actions: dict[int, dict[str, Any]] = {}
            self.capacity: dict[tuple[str, str], bool] = {}  # (size, region) -> available?
            self.droplet_limit: int | None = None
            # A new droplet answers GETs with status "new" and no IPv4 networks this many times, then "active"
            # (real droplets get their IPs only once active, so provisioning code must poll).
            self.new_polls = 1
            self._next_id = 3164444
            self._next_action_id = 36804636

    def fail_next(self, error_id: str, status: int, message: str | None = None, *, times: int = 1,
                  method: str | None = None, path: str | None = None) -> None:
        self._inject(id=error_id, status=status, message=message or f"injected {error_id}",
                     times=times, method=method, path=path)

    def rate_limit(self, times: int = 1) -> None:
        self.fail_next("too_many_requests", 429, "API Rate limit exceeded.", times=times)

    def available(self, size: str, region: str) -> bool:
        s = SIZES.get(size)
        return bool(s and s["available"] and region in s["regions"] and self.capacity.get((size, region), True))

    def set_status(self, droplet_id: int, status: str) -> None:
        with self.lock:
            self.droplets[droplet_id]["status"] = status
            self.droplets[droplet_id]["_polls_left"] = 0


def _err(error_id: str, message: str, status: int) -> JSONResponse:
    return json_response({"id": error_id, "message": message, "request_id": str(uuid.uuid4())}, status,
                         {"ratelimit-limit": "5000", "ratelimit-remaining": "0"})


def _region_json(slug: str, state: DigitalOceanState) -> dict[str, Any]:
    return {"slug": slug, "name": REGIONS[slug], "available": True,
            "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
            "sizes": [s for s in SIZES if state.available(s, slug)]}


def _paginate(request: Request, key: str, items: list[Any]) -> JSONResponse:
    page, per_page, chunk = page_slice(request, items, default=20, smallest=1, largest=200)
    pages = {}
    if page * per_page < len(items):
        pages["next"] = str(request.url.include_query_params(page=page + 1))
    return JSONResponse({key: chunk, "links": {"pages": pages}, "meta": {"total": len(items)}})


def create_app(state: DigitalOceanState) -> Starlette:
    def refuse(request: Request) -> JSONResponse | None:
        # Real DO body; note the capitalised id.
        return None if has_bearer(request, state.token) else _err("Unauthorized", "Unable to authenticate you", 401)

    guarded = JsonGuard(
        state, refuse=refuse,
        invalid_json=lambda: _err("bad_request", "unexpected end of JSON input", 400),
        injected=lambda err: _err(err["id"], err["message"], err["status"]),
    )

    def _find(request: Request) -> tuple[Any, JSONResponse | None]:
        d = by_int_id(state.droplets, request.path_params["id"])
        return (d, None) if d else (None, _err("not_found", _MSG_NOT_FOUND, 404))

    def _observe(d: dict[str, Any]) -> dict[str, Any]:
        """A GET of a droplet: advances new -> active and assigns the networks."""
        if d["status"] == "new":
            if d["_polls_left"] > 0:
                d["_polls_left"] -= 1
            else:
                d["status"] = "active"
        if d["status"] != "new" and not d["networks"]["v4"]:
            n = d["id"] % 250 + 2
            d["networks"]["v4"] = [
                {"ip_address": f"127.0.0.{n}", "netmask": "255.0.0.0", "gateway": "127.0.0.1", "type": "public"},  # loopback
                {"ip_address": f"10.110.0.{n}", "netmask": "255.255.240.0", "gateway": "10.110.0.1", "type": "private"},
            ]
        return public(d)

    @guarded
    async def sizes(request: Request, _body: Any):
        with state.lock:
            items = [dict(s, regions=[r for r in REGIONS if state.available(slug, r)] if s["available"] else [])
                     for slug, s in SIZES.items()]
        return _paginate(request, "sizes", items)

    @guarded
    async def regions(request: Request, _body: Any):
        with state.lock:
            return _paginate(request, "regions", [_region_json(r, state) for r in REGIONS])

    @guarded
    async def create_droplet(request: Request, body: Any):
        body = body if isinstance(body, dict) else {}
        for field in ("name", "size", "image"):
            if not body.get(field) and not (field == "name" and body.get("names")):
                return _err("unprocessable_entity", f"{field} is required", 422)
        size, region = body["size"], body.get("region", "nyc3")
        if size not in SIZES:
            return _err("unprocessable_entity", "You specified an invalid size for Droplet creation.", 422)
        if region not in REGIONS:
            return _err("unprocessable_entity", "You specified an invalid region for Droplet creation.", 422)
        names = body.get("names") or [body["name"]]
        with state.lock:
            if state.droplet_limit is not None and len(state.droplets) + len(names) > state.droplet_limit:
                # as seen in real 422 responses (e.g. terraform logs)
                return _err("unprocessable_entity", "creating this/these droplet(s) will exceed your droplet limit", 422)
            if not state.available(size, region):
                return _err("unprocessable_entity", "Size is not available in this region.", 422)
            created = []
            for name in names:
                did = state._next_id
                state._next_id += 1
                s = SIZES[size]
                d = {
                    "id": did, "name": name, "memory": s["memory"], "vcpus": s["vcpus"], "disk": s["disk"],
                    "locked": False, "status": "new", "created_at": _now_iso(), "features": ["droplet_agent"],
                    "backup_ids": [], "snapshot_ids": [], "volume_ids": [], "next_backup_window": None,
                    "image": {"id": 129211873, "name": "24.04 (LTS) x64", "distribution": "Ubuntu",
                              "slug": body["image"] if isinstance(body["image"], str) else None, "public": True,
                              "regions": list(REGIONS), "type": "base", "min_disk_size": 7, "status": "available"},
                    "size": dict(s), "size_slug": size,
                    "networks": {"v4": [], "v6": []},  # assigned once active (see _observe)
                    "region": _region_json(region, state), "tags": list(body.get("tags") or []),
                    "vpc_uuid": body.get("vpc_uuid") or "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
                    "_user_data": body.get("user_data"), "_ssh_keys": body.get("ssh_keys") or [],
                    "_polls_left": state.new_polls,
                }
                state.droplets[did] = d
                created.append(d)
                action = _new_action(state, "create", did, region)
            if len(created) == 1:
                return JSONResponse({"droplet": public(created[0]), "links": {"actions": [
                    {"id": action["id"], "rel": "create", "href": f"https://api.digitalocean.com/v2/actions/{action['id']}"}]}},
                    status_code=202)
            return JSONResponse({"droplets": [public(d) for d in created], "links": {"actions": []}}, status_code=202)

    @guarded
    async def list_droplets(request: Request, _body: Any):
        tag, name = request.query_params.get("tag_name"), request.query_params.get("name")
        with state.lock:
            items = [_observe(d) for d in sorted(state.droplets.values(), key=lambda d: d["id"])
                     if (tag is None or tag in d["tags"]) and name in (None, d["name"])]
        return _paginate(request, "droplets", items)

    @guarded
    async def delete_by_tag(request: Request, _body: Any):
        tag = request.query_params.get("tag_name")
        if not tag:
            return _err("bad_request", "tag_name is required", 400)
        with state.lock:
            for did in [i for i, d in state.droplets.items() if tag in d["tags"]]:
                del state.droplets[did]
        return Response(status_code=204)

    @guarded
    async def get_droplet(request: Request, _body: Any):
        with state.lock:
            d, e = _find(request)
            return e or JSONResponse({"droplet": _observe(d)})

    @guarded
    async def delete_droplet(request: Request, _body: Any):
        with state.lock:
            d, e = _find(request)
            if e:
                return e
            del state.droplets[d["id"]]
        return Response(status_code=204)

    _POWER = {"power_on": "active", "power_off": "off", "shutdown": "off", "reboot": "active", "power_cycle": "active"}

    @guarded
    async def droplet_action(request: Request, body: Any):
        kind = (body or {}).get("type")
        with state.lock:
            d, e = _find(request)
            if e:
                return e
            if kind not in _POWER:
                return _err("unprocessable_entity", f"'{kind}' is not a valid action type", 422)
            d["status"] = _POWER[kind]
            d["_polls_left"] = 0
            action = _new_action(state, kind, d["id"], d["region"]["slug"])
            return JSONResponse({"action": public(action)}, status_code=201)

    @guarded
    async def get_action(request: Request, _body: Any):
        with state.lock:
            action = state.actions.get(int(request.path_params["action_id"]))
            if action is None:
                return _err("not_found", _MSG_NOT_FOUND, 404)
            # Actions complete on the first poll.
            action.update(status="completed", completed_at=action["completed_at"] or _now_iso())
            return JSONResponse({"action": public(action)})

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _err("not_found", _MSG_NOT_FOUND, exc.status_code)

    return Starlette(
        routes=[
            Route("/v2/sizes", sizes),
            Route("/v2/regions", regions),
            Route("/v2/droplets", create_droplet, methods=["POST"]),
            Route("/v2/droplets", list_droplets, methods=["GET"]),
            Route("/v2/droplets", delete_by_tag, methods=["DELETE"]),
            Route("/v2/droplets/{id}", get_droplet, methods=["GET"]),
            Route("/v2/droplets/{id}", delete_droplet, methods=["DELETE"]),
            Route("/v2/droplets/{id}/actions", droplet_action, methods=["POST"]),
            Route("/v2/droplets/{id}/actions/{action_id:int}", get_action, methods=["GET"]),
            Route("/v2/actions/{action_id:int}", get_action, methods=["GET"]),
        ],
        exception_handlers={HTTPException: not_found},
    )


def _new_action(state: DigitalOceanState, kind: str, droplet_id: int, region: str) -> dict[str, Any]:
    aid = state._next_action_id
    state._next_action_id += 1
    action = {"id": aid, "status": "in-progress", "type": kind, "started_at": _now_iso(), "completed_at": None,
              "resource_id": droplet_id, "resource_type": "droplet", "region": _region_json(region, state),
              "region_slug": region}
    state.actions[aid] = action
    return action
