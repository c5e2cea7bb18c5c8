"""Plumbing of the built-in providers that reach their API through a synchronous client library
(`hcloud`, `pydo`): the token / URL / timeout / retry / cache settings, running a call in a worker thread,
translating the library's exceptions into `decabill.providers.errors`, numeric server ids and the three
power operations; `check_user_data()` and `decimal_or_none()` for the request and answer mapping.

A subclass supplies what is specific to its API: `_new_client()`, `_translate()` (which exceptions mean
what, capacity included), `_power()` and the mapping of the API's objects to ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, TypeVar

from decabill.providers.base import ProvisioningProvider
from decabill.providers.errors import ProviderNotConfigured, ProviderRequestFailed, ServerNotFound

T = TypeVar("T")


def decimal_or_none(value: Any) -> Decimal | None:
    """A price as the API sends it (number or decimal string) as a Decimal; None when absent or unreadable."""
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def check_user_data(user_data: str | None, limit: int, api_name: str) -> None:
    """Refuse cloud-init user data larger than the API accepts (`limit` bytes) before asking it."""
    size = len((user_data or "").encode())
    if size > limit:
        raise ProviderRequestFailed(
            "provision server", f"User data size ({size} bytes) exceeds {api_name} limit of {limit} bytes"
        )


_thread_clients = threading.local()
_MAX_CLIENTS_PER_THREAD = 8


class SyncApiProvider(ProvisioningProvider):
    #: the environment variable named when the token is missing (`ProviderNotConfigured`)
    token_variable: ClassVar[str]
    #: what a subscription's configuration may contain (a function of `decabill.providers.schemas`)
    schema: ClassVar[Callable[[], dict[str, Any]]]

    def __init__(self, token: str | None, api_url: str, *, timeout: float = 30.0, max_retries: int = 2,
                 cache_seconds: float = 60.0):
        self._token = token
        self._api_url = api_url
        self._timeout = timeout
        self._max_retries = max_retries
        self.cache_seconds = cache_seconds

    def config_schema(self) -> dict[str, Any]:
        return type(self).schema()

    # --- calling the API ---
    @abstractmethod
    def _new_client(self, token: str) -> Any:
        """A client of the library for `token`, configured from the settings."""

    @staticmethod
    def _close_client(client: Any) -> None:
        """Close a client of the library (its HTTP connections); override when the library's client has no
        `close()`."""
        client.close()

    @abstractmethod
    def _translate(self, action: str, exc: Exception) -> ProviderRequestFailed | None:
        """Our error for an exception of the library (None: not the library's, let it through)."""

    def _run(self, work: Callable[[Any], T], client: Any) -> T:
        """Runs in the worker thread; override to wrap the library's calls."""
        return work(client)

    def _thread_client(self, token: str) -> Any:
        """The library's client for these settings in the calling worker thread, made once per thread and
        reused: its HTTP session keeps connections alive between calls (a client per call opened a new TCP
        connection every time — the dashboard's status polls spent most of their time there). One per thread,
        because the libraries' sessions are not meant to be shared between threads; at most
        `_MAX_CLIENTS_PER_THREAD` settings per thread, the least recently used one closed (its connections
        with it) when another is needed."""
        clients: OrderedDict[tuple, Any] | None = getattr(_thread_clients, "by_settings", None)
        if clients is None:
            clients = _thread_clients.by_settings = OrderedDict()
        key = (type(self), token, self._api_url, self._timeout, self._max_retries)
        client = clients.get(key)
        if client is not None:
            clients.move_to_end(key)
            return client
        while len(clients) >= _MAX_CLIENTS_PER_THREAD:
            (provider_type, *_), evicted = clients.popitem(last=False)
            with contextlib.suppress(Exception):  # a client that fails to close is dropped all the same
                provider_type._close_client(evicted)
        client = clients[key] = self._new_client(token)
        return client

    async def _call(self, action: str, work: Callable[[Any], T]) -> T:
        """Run `work(client)` in a thread and translate the client's exceptions into ours."""
        if not self._token:
            raise ProviderNotConfigured(self.token_variable)
        token = self._token
        try:
            return await asyncio.to_thread(lambda: self._run(work, self._thread_client(token)))
        except Exception as exc:
            error = self._translate(action, exc)
            if error is None:
                raise
            raise error from exc

    # --- shared checks ---
    @staticmethod
    def _numeric_id(server_id: str) -> int:
        """The API's integer id; an id that is not a number names no server."""
        try:
            return int(server_id)
        except (TypeError, ValueError):
            raise ServerNotFound(str(server_id)) from None

    # --- power ---
    @abstractmethod
    async def _power(self, action: str, kind: str, server_id: str) -> None:
        """Power operation `kind` (`power_on`, `power_off`, `reboot`); `ServerNotFound` for an unknown id."""

    async def start_server(self, server_id: str) -> None:
        await self._power("start server", "power_on", server_id)

    async def stop_server(self, server_id: str) -> None:
        await self._power("stop server", "power_off", server_id)

    async def restart_server(self, server_id: str) -> None:
        await self._power("restart server", "reboot", server_id)
