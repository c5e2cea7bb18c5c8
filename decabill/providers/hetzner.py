"""Hetzner Cloud through the official `hcloud` client (synchronous: every call runs in a worker thread).

Base URL `HETZNER_API_URL` (the tests point it at tests/fakes/hetzner.py), token `HETZNER_API_TOKEN`.
Server-type prices are Hetzner's gross prices; the list price shown is the one of `fsn1` as in the
reference, and `region_prices` keeps every location's price for pricing previews.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from decabill.providers.base import CreateServerRequest, ProvisionedServer, RegionPrice, ServerInfo, ServerType
from decabill.providers.errors import ProviderCapacityError, ProviderRequestFailed, ServerNotFound
from decabill.providers.schemas import hetzner_schema
from decabill.providers.sync_api import SyncApiProvider, check_user_data, decimal_or_none

T = TypeVar("T")

REFERENCE_LOCATION = "fsn1"
DEFAULT_IMAGE = "ubuntu-22.04"
USER_DATA_LIMIT = 32 * 1024  # bytes, Hetzner's documented maximum
# Error codes meaning "no room for this server right now" (sold out, placement, account limit).
CAPACITY_CODES = {"resource_unavailable", "resource_limit_exceeded", "placement_error", "server_limit_exceeded"}


def _gross(price: dict[str, Any] | None, key: str) -> Decimal | None:
    return decimal_or_none(((price or {}).get(key) or {}).get("gross"))


class HetznerProvider(SyncApiProvider):
    id = "hetzner"
    display_name = "Hetzner Cloud"
    token_variable = "HETZNER_API_TOKEN"
    schema = staticmethod(hetzner_schema)

    # --- plumbing ---
    def _new_client(self, token: str):
        import hcloud
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        client = hcloud.Client(token=token, api_endpoint=self._api_url, timeout=self._timeout,
                               poll_interval=1.0, application_name="decabill")
        # hcloud retries rate limits, conflicts and gateway errors up to 5 times with exponential backoff
        # (1 s, 2 s, 4 s, ...); an API request of ours should not hang for half a minute.
        client._client._retry_max_retries = self._max_retries
        # A kept-alive connection the API closed while it sat idle in the pool shows as dead only when reused
        # ("Connection aborted"): hcloud retries rate limits, conflicts and timeouts, not that. A read (GET, HEAD)
        # is sent once more on a new connection; a connection that cannot be made is tried once more whatever the
        # method (nothing was sent). Other methods are not repeated: the first may have been carried out.
        stale = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=False, raise_on_status=False,
                      allowed_methods=frozenset({"GET", "HEAD"}))
        client._client._session.mount(self._api_url, HTTPAdapter(max_retries=stale))
        return client

    @staticmethod
    def _close_client(client: Any) -> None:
        client._client._session.close()  # hcloud.Client has no close(); its requests session holds the connections

    def _run(self, work: Callable[[Any], T], client: Any) -> T:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # hcloud's per-location deprecation notices
            return work(client)

    def _translate(self, action: str, exc: Exception) -> ProviderRequestFailed | None:
        import hcloud
        import requests

        if isinstance(exc, hcloud.APIException):
            error = ProviderCapacityError if exc.code in CAPACITY_CODES else ProviderRequestFailed
            return error(action, str(exc.message), code=exc.code)
        if isinstance(exc, (hcloud.HCloudException, requests.RequestException)):
            return ProviderRequestFailed(action, str(exc) or type(exc).__name__)
        return None

    # --- catalogue ---
    async def fetch_server_types(self) -> list[ServerType]:
        return await self._call("fetch server types",
                                lambda c: [self._server_type(i) for i in c.server_types.get_all()])

    @staticmethod
    def _server_type(item: Any) -> ServerType:
        prices = {p.get("location"): p for p in (item.prices or []) if isinstance(p, dict)}
        region_prices = {
            loc: RegionPrice(_gross(p, "price_monthly"), _gross(p, "price_hourly"))
            for loc, p in prices.items()
        }
        # `deprecation` (whole type) is being replaced by per-location deprecation (`locations[]`).
        deprecated = bool(item.deprecation is not None or item.deprecated)
        if item.locations is None:  # older API answers: sold where priced
            available = tuple(prices)
        else:
            available = tuple(
                entry.location.name for entry in item.locations
                if entry.available is not False and entry.deprecation is None and entry.location.name in prices
            )
        reference = region_prices.get(REFERENCE_LOCATION, RegionPrice(None, None))
        raw = {
            "name": item.name, "deprecated": deprecated, "prices": list(prices.values()),
            "locations": [{"name": e.location.name, "available": e.available} for e in item.locations or []],
        }
        return ServerType(
            id=item.name, name=item.description or item.name, cores=item.cores, memory=item.memory, disk=item.disk,
            price_monthly=reference.monthly, price_hourly=reference.hourly, description=item.description or item.name,
            regions=tuple(prices), available_regions=available, deprecated=deprecated, region_prices=region_prices,
            raw=raw,
        )

    async def account_limit_reached(self) -> tuple[bool, Any]:
        """`GET /limits` where the API offers it (a 404 means "limits unknown", as in the reference)."""
        import hcloud

        def limits(client) -> dict[str, Any] | None:
            try:
                return client.request("GET", "/limits")
            except hcloud.APIException as exc:
                if exc.code in ("not_found", 404):
                    return None
                raise

        payload = await self._call("fetch account limits", limits)
        if not payload:
            return False, None
        body = payload.get("limits", payload)
        servers = body.get("servers") if isinstance(body.get("servers"), dict) else {}
        maximum = body.get("max_servers", servers.get("max"))
        used = body.get("server_count", servers.get("used")) or 0
        return (maximum is not None and used >= maximum), payload

    # --- servers ---
    async def create_server(self, request: CreateServerRequest) -> ProvisionedServer:
        from hcloud.firewalls import Firewall
        from hcloud.images import Image
        from hcloud.locations import Location
        from hcloud.server_types import ServerType as HServerType

        check_user_data(request.user_data, USER_DATA_LIMIT, "Hetzner")

        def create(client):
            return client.servers.create(
                name=request.name,
                server_type=HServerType(name=request.server_type),
                image=Image(name=request.image or DEFAULT_IMAGE),
                location=Location(name=request.region),
                user_data=request.user_data,
                labels=dict(request.labels) or None,
                firewalls=[Firewall(id=request.firewall_id)] if request.firewall_id is not None else None,
                start_after_create=True,
            )

        response = await self._call("provision server", create)
        server = response.server
        if server is None or server.id is None:
            raise ProviderRequestFailed("provision server", "the API returned no server")
        ipv4 = server.public_net.ipv4 if server.public_net else None
        return ProvisionedServer(server_id=str(server.id), name=server.name or request.name,
                                 status=server.status or "initializing", public_ip=ipv4.ip if ipv4 else None)

    async def delete_server(self, server_id: str) -> None:
        from hcloud.servers import Server

        sid = self._numeric_id(server_id)
        try:
            await self._call("deprovision server", lambda c: c.servers.delete(Server(id=sid)))
        except ProviderRequestFailed as exc:
            if exc.code != "not_found":  # already gone: nothing left to delete
                raise

    async def server_info(self, server_id: str) -> ServerInfo:
        sid = self._numeric_id(server_id)
        try:
            server = await self._call("get server info", lambda c: c.servers.get_by_id(sid))
        except ProviderRequestFailed as exc:
            if exc.code == "not_found":
                raise ServerNotFound(server_id) from exc
            raise
        return self._info(server)

    async def find_servers(self, label: str, value: str) -> list[ServerInfo]:
        servers = await self._call("find servers", lambda c: c.servers.get_all(label_selector=f"{label}={value}"))
        return [self._info(server) for server in sorted(servers, key=lambda s: s.id)]

    @staticmethod
    def _info(server: Any) -> ServerInfo:
        public = server.public_net.ipv4 if server.public_net else None
        private = server.private_net[0].ip if server.private_net else None
        metadata: dict[str, Any] = {}
        if server.location is not None:
            metadata["location"] = server.location.name
        if server.server_type is not None:
            metadata["serverType"] = server.server_type.name
        return ServerInfo(server_id=str(server.id), name=server.name or "",
                          public_ip=(public.ip if public else "") or "",
                          private_ip=private, status=server.status or "unknown", metadata=metadata)

    async def _power(self, action: str, kind: str, server_id: str) -> None:
        from hcloud.servers import Server

        sid = self._numeric_id(server_id)
        try:
            # hcloud names its methods after the operations: servers.power_on / power_off / reboot
            await self._call(action, lambda c: getattr(c.servers, kind)(Server(id=sid)))
        except ProviderRequestFailed as exc:
            if exc.code == "not_found":
                raise ServerNotFound(server_id) from exc
            raise
