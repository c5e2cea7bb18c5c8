"""DigitalOcean through the official `pydo` client (synchronous requests transport, in a worker thread).

Base URL `DIGITALOCEAN_API_URL` (pydo appends `/v2/...`), token `DIGITALOCEAN_API_TOKEN`.
Two pydo traps handled here (shared/notes/stack.md §9.3): azure-core refuses bearer tokens over plain
http (the local fake), so the token goes through a key-credential policy that sets the same header;
and `droplets.get`, `destroy` and `droplet_actions.post` return the error JSON of a 404 instead of raising.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from decabill.providers.base import CreateServerRequest, ProvisionedServer, ServerInfo, ServerType
from decabill.providers.errors import ProviderCapacityError, ProviderRequestFailed, ServerNotFound
from decabill.providers.schemas import digitalocean_schema
from decabill.providers.sync_api import SyncApiProvider, check_user_data, decimal_or_none

DEFAULT_IMAGE = "ubuntu-22-04-x64"
USER_DATA_LIMIT = 65536  # bytes (behavior.md §7.3)
PAGE_SIZE = 200
# 422 messages that mean "no room right now" rather than "wrong request".
CAPACITY_HINTS = ("not available in this region", "droplet limit", "capacity")


def _error_detail(exc: Any) -> tuple[str, Any]:
    """DigitalOcean's error body is `{"id", "message", "request_id"}`; fall back to azure's text."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = json.loads(response.text())
            if isinstance(body, dict) and body.get("message"):
                return str(body["message"]), body.get("id") or getattr(exc, "status_code", None)
        except (ValueError, TypeError):
            pass
    return (getattr(exc, "reason", None) or str(exc) or type(exc).__name__), getattr(exc, "status_code", None)


def _all_pages(list_page: Callable[[int], Any], key: str) -> list[dict[str, Any]]:
    """Every entry of a paged list call (`list_page(page)` answers one page), following `links.pages.next`."""
    entries, page = [], 1
    while True:
        body = list_page(page)
        entries.extend(body.get(key) or [])
        if not ((body.get("links") or {}).get("pages") or {}).get("next"):
            return entries
        page += 1


def _missing(result: Any, key: str) -> bool:
    """pydo answers an expected 404 with the error JSON instead of raising."""
    return not isinstance(result, dict) or key not in result


class DigitalOceanProvider(SyncApiProvider):
    id = "digital-ocean"
    display_name = "DigitalOcean"
    token_variable = "DIGITALOCEAN_API_TOKEN"
    schema = staticmethod(digitalocean_schema)

    # --- plumbing ---
    def _new_client(self, token: str):
        import pydo
        from azure.core.credentials import AzureKeyCredential
        from azure.core.pipeline.policies import AzureKeyCredentialPolicy

        return pydo.Client(
            token,
            endpoint=self._api_url,
            timeout=max(int(self._timeout), 1),
            connection_timeout=self._timeout,
            read_timeout=self._timeout,
            retry_total=self._max_retries,
            authentication_policy=AzureKeyCredentialPolicy(AzureKeyCredential(token), "Authorization",
                                                           prefix="Bearer"),
        )

    def _translate(self, action: str, exc: Exception) -> ProviderRequestFailed | None:
        from azure.core.exceptions import AzureError, HttpResponseError

        if isinstance(exc, HttpResponseError):
            detail, code = _error_detail(exc)
            capacity = exc.status_code == 422 and any(hint in detail.lower() for hint in CAPACITY_HINTS)
            return (ProviderCapacityError if capacity else ProviderRequestFailed)(action, detail, code=code)
        if isinstance(exc, AzureError):  # network problems, timeouts
            return ProviderRequestFailed(action, _error_detail(exc)[0])
        return None

    # --- catalogue ---
    async def fetch_server_types(self) -> list[ServerType]:
        def all_sizes(client) -> list[dict[str, Any]]:
            return _all_pages(lambda page: client.sizes.list(per_page=PAGE_SIZE, page=page), "sizes")

        return [self._server_type(size) for size in await self._call("fetch server types", all_sizes)]

    @staticmethod
    def _server_type(size: dict[str, Any]) -> ServerType:
        slug = str(size.get("slug", ""))
        regions = tuple(size.get("regions") or [])
        memory = size.get("memory")
        return ServerType(
            id=slug, name=slug.upper(), cores=size.get("vcpus"), memory=memory / 1024 if memory is not None else None,
            disk=size.get("disk"), price_monthly=decimal_or_none(size.get("price_monthly")),
            price_hourly=decimal_or_none(size.get("price_hourly")), description=size.get("description") or slug,
            # DigitalOcean lists a size's regions where it can be created now; `available` is global.
            regions=regions, available_regions=regions if size.get("available", True) else (),
            deprecated=bool(size.get("deprecated", False)), raw=size,
        )

    # --- servers ---
    async def create_server(self, request: CreateServerRequest) -> ProvisionedServer:
        check_user_data(request.user_data, USER_DATA_LIMIT, "DigitalOcean")
        body: dict[str, Any] = {"name": request.name, "region": request.region, "size": request.server_type,
                                "image": request.image or DEFAULT_IMAGE,
                                "tags": [f"{k}:{v}" for k, v in request.labels.items()]}
        if request.user_data:
            body["user_data"] = request.user_data
        result = await self._call("provision server", lambda c: c.droplets.create(body=body))
        droplet = (result or {}).get("droplet") if isinstance(result, dict) else None
        if not droplet or droplet.get("id") is None:
            raise ProviderRequestFailed("provision server", "the API returned no droplet")
        return ProvisionedServer(server_id=str(droplet["id"]), name=droplet.get("name") or request.name,
                                 status=droplet.get("status") or "new", public_ip=self._ip(droplet, "public"))

    @staticmethod
    def _ip(droplet: dict[str, Any], kind: str) -> str | None:
        for network in ((droplet.get("networks") or {}).get("v4") or []):
            if network.get("type") == kind and network.get("ip_address"):
                return network["ip_address"]
        return None

    async def delete_server(self, server_id: str) -> None:
        droplet_id = self._numeric_id(server_id)
        # A 404 comes back as a body, not an exception: the droplet is already gone, which is what we want.
        await self._call("deprovision server", lambda c: c.droplets.destroy(droplet_id))

    async def server_info(self, server_id: str) -> ServerInfo:
        droplet_id = self._numeric_id(server_id)
        result = await self._call("get server info", lambda c: c.droplets.get(droplet_id))
        if _missing(result, "droplet"):
            raise ServerNotFound(server_id)
        return self._info(result["droplet"], server_id)

    async def find_servers(self, label: str, value: str) -> list[ServerInfo]:
        """The droplets tagged `label:value` (labels are sent as such tags)."""
        def tagged(client) -> list[dict[str, Any]]:
            return _all_pages(lambda page: client.droplets.list(tag_name=f"{label}:{value}", per_page=PAGE_SIZE,
                                                                page=page), "droplets")

        droplets = await self._call("find servers", tagged)
        return [self._info(droplet) for droplet in sorted(droplets, key=lambda d: d.get("id") or 0)]

    @classmethod
    def _info(cls, droplet: dict[str, Any], server_id: str = "") -> ServerInfo:
        region = droplet.get("region") or {}
        return ServerInfo(server_id=str(droplet.get("id", server_id)), name=droplet.get("name") or "",
                          public_ip=cls._ip(droplet, "public") or "", private_ip=cls._ip(droplet, "private"),
                          status=droplet.get("status") or "unknown",
                          metadata={"region": region.get("slug"), "regionName": region.get("name")})

    async def _power(self, action: str, kind: str, server_id: str) -> None:
        droplet_id = self._numeric_id(server_id)
        result = await self._call(action, lambda c: c.droplet_actions.post(droplet_id, body={"type": kind}))
        if _missing(result, "action"):
            raise ServerNotFound(server_id)
