"""The dashboard gateway for real: `decabill.realtime.server` under uvicorn on 127.0.0.1, python-socketio
`AsyncClient`s, the test databases, subscriptions ordered through the HTTP API against the Hetzner fake
(behavior.md part B §8, spec/asyncapi.yaml). Outbound validation is on (DECABILL_VALIDATE_RESPONSES),
and every message a client receives is checked against its schema once more on the client side.

Intervals are at least 10 s; tests that need many ticks give the gateway a faster clock (`FastClock`)
instead of sleeping, and assert on the interval the server schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis.asyncio as aioredis
import socketio
import uvicorn
from hypothesis import HealthCheck, given, settings

from decabill.config import get_settings
from decabill.realtime import dashboard
from decabill.realtime import _generated as gen
from decabill.realtime.handlers import DashboardGateway
from decabill.realtime.server import close_socket_server, create_socket_server
from tests.conftest import STATIC_KEY
from tests.fakes.keycloak import KeycloakState
from tests.realtime.test_codegen import assert_conforms, inbound_messages
from tests.subscriptions.conftest import complete_profile, hetzner_plan, manual_plan, order, only_item
from tests.processes import free_port, port_is_open

NS = "/billing"
UPDATE, ERROR = "dashboardStatusUpdate", "error"
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------- harness


class FastClock:
    """The gateway's clock running `speed` times faster than real time (intervals and shared-poll ages)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed

    def now(self) -> float:
        return time.monotonic() * self.speed

    def wall(self) -> float:
        return time.time() * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.speed)


@dataclass
class Running:
    url: str
    sio: socketio.AsyncServer
    gateway: DashboardGateway


@contextlib.asynccontextmanager
async def socket_server(clock: Any = None) -> AsyncIterator[Running]:
    """The real gateway (create_socket_server, current environment) on a free port of 127.0.0.1."""
    sio, gateway = create_socket_server(get_settings(), clock=clock)
    assert gateway.emitter.validate_outbound  # DECABILL_VALIDATE_RESPONSES=true in the test environment
    server = uvicorn.Server(uvicorn.Config(socketio.ASGIApp(sio), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(f"http://127.0.0.1:{port}", sio, gateway)
        assert gateway.internal_errors == 0
    finally:
        await close_socket_server(sio, gateway)
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Any], timeout: float = 10, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, message or "condition not met in time"
        await asyncio.sleep(0.01)


class Dashboard:
    """A browser-like Socket.IO client on /billing recording every event (checked against the spec)."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.connect_errors: list[Any] = []
        self.disconnects = 0
        self.client.on("*", self._any, namespace=NS)
        self.client.on("connect_error", self.connect_errors.append, namespace=NS)
        self.client.on("disconnect", self._disconnected, namespace=NS)

    async def _any(self, event: str, *args: Any) -> None:
        assert len(args) == 1, args
        assert_conforms(event, args[0])
        self.events.append((event, args[0]))

    def _disconnected(self, *args: Any) -> None:
        self.disconnects += 1

    async def connect(self, url: str, token: str | None = None, *, tenant: str | None = None,
                      via: str = "auth") -> "Dashboard":
        """`via="auth"`: credentials and tenant in the auth payload (browsers); `"headers"`: Node style."""
        auth: dict[str, str] = {}
        headers: dict[str, str] = {}
        credentials = None if token is None else (token if " " in token else f"Bearer {token}")
        if via == "auth":
            auth.update({"Authorization": credentials} if credentials else {})
            auth.update({"tenantId": tenant} if tenant else {})
        else:
            headers.update({"Authorization": credentials} if credentials else {})
            headers.update({"X-Tenant": tenant} if tenant else {})
        await self.client.connect(url, namespaces=[NS], transports=["websocket"], auth=auth or None,
                                  headers=headers, wait_timeout=5)
        return self

    @property
    def sid(self) -> str:
        sid = self.client.get_sid(NS)
        assert sid is not None
        return sid

    @property
    def updates(self) -> list[dict[str, Any]]:
        return [payload for event, payload in self.events if event == UPDATE]

    @property
    def errors(self) -> list[str]:
        return [payload["message"] for event, payload in self.events if event == ERROR]

    async def subscribe(self, payload: Any = None) -> None:
        """Emit and wait for the server's acknowledgement (sent once the handler has returned)."""
        await self.client.call("subscribeDashboardStatus", payload, namespace=NS, timeout=15)

    async def unsubscribe(self) -> None:
        await self.client.call("unsubscribeDashboardStatus", {}, namespace=NS, timeout=15)

    async def wait_updates(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        await eventually(lambda: len(self.updates) >= count, timeout, f"{count} updates expected: {self.events}")
        return self.updates

    async def close(self) -> None:
        await self.client.disconnect()

    def assert_up(self) -> None:
        assert self.client.connected and self.disconnects == 0


@contextlib.asynccontextmanager
async def dashboards(count: int = 1) -> AsyncIterator[list[Dashboard]]:
    clients = [Dashboard() for _ in range(count)]
    try:
        yield clients
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def user_id(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sub"]


def item_ids(update: dict[str, Any]) -> list[str]:
    return [item["itemId"] for item in update["items"]]


def server_reads(fake_cloud) -> int:
    """GET /v1/servers/<id> requests the Hetzner fake has answered (server-info reads)."""
    with fake_cloud.hetzner.lock:
        return sum(1 for r in fake_cloud.hetzner.requests
                   if r["method"] == "GET" and r["path"].startswith("/v1/servers/") and r["path"].count("/") == 3)


# --------------------------------------------------------------------------------------------- fixtures


async def customer(api, admin: str, email: str) -> str:
    token = await api.user_token(admin, email)
    await complete_profile(api, token, email=email)
    return token


async def servers_of(api, token: str, plan_id: str, count: int) -> list[dict]:
    """`count` active Hetzner subscriptions of the token's user: [{subscription, item, info}]."""
    out = []
    for _ in range(count):
        subscription = await order(api, token, plan_id)
        item = await only_item(api, token, subscription["id"])
        out.append({"subscription": subscription, "item": item})
    return out


def expected_item(api_info: dict, subscription_id: str, item: dict) -> dict:
    """The REST server-info as a `dashboardStatusUpdate` item (absent optional fields omitted)."""
    shaped = {key: value for key, value in api_info.items() if value is not None}
    return {"subscriptionId": subscription_id, "itemId": item["id"], "service": item["service"], **shaped}


# ------------------------------------------------------------------------------------ the dashboard flow


async def test_users_jwt_dashboard_shows_only_the_users_own_active_items(cloud, admin, plan, fake_cloud):
    alice = await customer(cloud, admin, "alice@example.com")
    bob = await customer(cloud, admin, "bob@example.com")
    alice_servers = await servers_of(cloud, alice, plan["id"], 2)
    [bob_server] = await servers_of(cloud, bob, plan["id"], 1)
    # Subscriptions with nothing to show: a product without provider (an active item without a server), one
    # pending cancellation (only `active` subscriptions are shown) and one waiting for capacity.
    await order(cloud, alice, (await manual_plan(cloud, admin))["id"])
    [ending] = await servers_of(cloud, alice, plan["id"], 1)
    cancel = await cloud.post(f"/subscriptions/{ending['subscription']['id']}/cancel", token=alice)
    assert cancel.status_code == 200 and cancel.json()["status"] == "pending_cancel", cancel.text
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    waiting = await order(cloud, alice, plan["id"], autoBackorder=True)
    assert waiting["status"] == "pending_backorder"
    fake_cloud.hetzner.capacity.clear()

    async with socket_server() as running, dashboards(2) as (a, b):
        await a.connect(running.url, alice)  # auth.Authorization (browser style)
        await b.connect(running.url, bob, via="headers")  # Authorization header (Node style)
        # A client naming someone else's subscription is ignored: the list comes from the user.
        await a.subscribe({"pollIntervalMs": 30000, "subscriptionIds": [bob_server["subscription"]["id"]]})
        state = running.gateway.socket_state(a.sid)
        assert state is not None and state.ticks == 1  # the first snapshot was produced before the ack
        await b.subscribe()

        [first_a] = await a.wait_updates(1)
        [first_b] = await b.wait_updates(1)
        newest_first = [s["item"]["id"] for s in reversed(alice_servers)]
        assert item_ids(first_a) == newest_first  # newest subscription first, one item each
        assert item_ids(first_b) == [bob_server["item"]["id"]]

        # Each item has exactly the REST server-info's content.
        for server in alice_servers:
            sub_id, item = server["subscription"]["id"], server["item"]
            rest = await cloud.get(f"/subscriptions/{sub_id}/items/{item['id']}/server-info", token=alice)
            assert rest.status_code == 200, rest.text
            [shown] = [i for i in first_a["items"] if i["itemId"] == item["id"]]
            assert shown == expected_item(rest.json(), sub_id, item)
            assert shown["status"] == "running" and shown["metadata"]["provider"] == "hetzner"
            assert "privateIp" not in shown  # null in REST, omitted here
        assert a.errors == [] and b.errors == []
        assert len(a.updates) == 1 and len(b.updates) == 1  # nothing else was sent to either socket
        a.assert_up()
        b.assert_up()


async def test_keycloak_token_dashboard(env, make_api, fake_cloud, cloud):
    fake_cloud.keycloak.reset()
    from decabill.identity import keycloak as keycloak_module

    keycloak_module.jwks_cache.clear()
    env.update(AUTHENTICATION_METHOD="keycloak", KEYCLOAK_SERVER_URL=fake_cloud.keycloak_url,
               KEYCLOAK_REALM=KeycloakState.REALM, KEYCLOAK_CLIENT_ID=KeycloakState.CLIENT_ID)
    kc = await make_api()
    token = fake_cloud.keycloak.mint("sub-owner", email="owner@example.com")  # first user: admin
    await complete_profile(kc, token, email="owner@example.com")
    plan = await hetzner_plan(kc, token)
    subscription = await order(kc, token, plan["id"])
    item = await only_item(kc, token, subscription["id"])

    async with socket_server() as running, dashboards(2) as (owner, stranger):
        await owner.connect(running.url, token)
        await owner.subscribe({})
        [update] = await owner.wait_updates(1)
        assert item_ids(update) == [item["id"]]
        assert update["items"][0]["subscriptionId"] == subscription["id"]

        # Another Keycloak user (synced on the handshake) sees an empty dashboard.
        await stranger.connect(running.url, fake_cloud.keycloak.mint("sub-other", email="other@example.com"))
        await stranger.subscribe()
        assert (await stranger.wait_updates(1))[0]["items"] == []

        forged = fake_cloud.keycloak.mint("sub-owner", email="owner@example.com", alg="HS256",
                                          hmac_key="not-the-realm-key")
        refused = Dashboard()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(running.url, forged)
        assert refused.connect_errors == [{"message": "Unauthorized"}]
    keycloak_module.jwks_cache.clear()


async def test_api_key_socket_connects_but_cannot_subscribe(env, make_api, cloud):
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY=STATIC_KEY)
    await make_api()
    async with socket_server() as running, dashboards(2) as (by_auth, by_header):
        await by_auth.connect(running.url, STATIC_KEY)
        await by_header.connect(running.url, f"ApiKey {STATIC_KEY}", via="headers", tenant="acme")
        for client in (by_auth, by_header):
            await client.subscribe({"pollIntervalMs": 10000})
            assert client.errors == ["User not authenticated"]
            assert client.updates == []
            assert running.gateway.interval_ms(client.sid) is None
            client.assert_up()
        assert running.gateway.pollers == 0 and running.gateway.provider_calls == 0


async def test_handshake_refusals(cloud, admin):
    acme_admin = await cloud.admin_token("root@acme.example", tenant="acme")
    acme_user = await cloud.user_token(acme_admin, "carol@acme.example", tenant="acme")
    default_user = await cloud.user_token(admin, "dave@example.com")
    cases = [
        (None, {}, "Unauthorized"),  # no token
        ("not-a-jwt", {}, "Unauthorized"),
        (jwt.encode({"sub": str(uuid.uuid4())}, "wrong-secret", algorithm="HS256"), {}, "Unauthorized"),
        (default_user, {"tenant": "acme"}, "Unauthorized"),  # a token of another tenant
        (acme_user, {}, "Unauthorized"),  # acme user without a tenant = default tenant
        (acme_user, {"tenant": "globex", "via": "headers"}, "Unauthorized"),
        (default_user, {"tenant": "initech"}, "Invalid tenant"),  # not configured
        (default_user, {"tenant": "initech", "via": "headers"}, "Invalid tenant"),
        (STATIC_KEY, {}, "Unauthorized"),  # the API key is not accepted in users mode
    ]
    async with socket_server() as running:
        for token, options, message in cases:
            client = Dashboard()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.connect(running.url, token, **options)
            assert client.connect_errors == [{"message": message}], (token, options)
            await client.close()
        assert running.gateway.connected == 0
        async with dashboards(2) as (by_auth, by_header):
            await by_auth.connect(running.url, acme_user, tenant="acme")  # auth.tenantId
            await by_header.connect(running.url, acme_user, tenant="acme", via="headers")  # X-Tenant
            for client in (by_auth, by_header):
                await client.subscribe()
                assert (await client.wait_updates(1))[0]["items"] == []
                assert running.gateway.socket_state(client.sid).principal.tenant == "acme"


async def test_access_denied_for_a_locked_or_deleted_user_and_polling_stops(cloud, admin, plan):
    erin = await customer(cloud, admin, "erin@example.com")
    await servers_of(cloud, erin, plan["id"], 1)
    frank = await cloud.user_token(admin, "frank@example.com")  # no subscriptions: may be deleted
    clock = FastClock(200)  # 10 s = 50 ms
    async with socket_server(clock) as running, dashboards(3) as (erin_ws, frank_ws, erin_later):
        gateway = running.gateway
        await erin_ws.connect(running.url, erin)
        await frank_ws.connect(running.url, frank)
        await erin_later.connect(running.url, erin)

        assert (await cloud.delete(f"/users/{user_id(frank)}", token=admin)).status_code == 204
        await frank_ws.subscribe()
        assert frank_ws.errors == ["Access denied"] and frank_ws.updates == []
        assert gateway.interval_ms(frank_ws.sid) is None

        await erin_ws.subscribe({"pollIntervalMs": 10000})
        await erin_ws.wait_updates(3)
        assert (await cloud.post(f"/users/{user_id(erin)}/lock", token=admin)).status_code == 200
        await eventually(lambda: erin_ws.errors == ["Access denied"])  # the next tick finds the lock
        await eventually(lambda: gateway.interval_ms(erin_ws.sid) is None)
        seen = len(erin_ws.updates)
        await asyncio.sleep(0.3)  # six intervals
        assert len(erin_ws.updates) == seen and erin_ws.errors == ["Access denied"]

        await erin_later.subscribe()  # connected before the lock; subscribing now is refused
        assert erin_later.errors == ["Access denied"] and erin_later.updates == []
        assert gateway.pollers == 0
        for client in (erin_ws, frank_ws, erin_later):
            client.assert_up()


async def test_interval_is_clamped_and_scheduled(cloud, env, admin, plan):
    george = await customer(cloud, admin, "george@example.com")
    await servers_of(cloud, george, plan["id"], 1)
    clock = FastClock(50)  # 10 s = 200 ms
    async with socket_server(clock) as running, dashboards() as (ws,):
        gateway = running.gateway
        await ws.connect(running.url, george)
        for requested, scheduled in [
            ({"pollIntervalMs": 1}, 10000), ({"pollIntervalMs": -5}, 10000), ({"pollIntervalMs": 9999}, 10000),
            ({"pollIntervalMs": 10000}, 10000), ({"pollIntervalMs": 45000}, 45000),
            ({"pollIntervalMs": 120000}, 120000), ({"pollIntervalMs": 120001}, 120000),
            ({"pollIntervalMs": 10**18}, 120000), ({"pollIntervalMs": 30000.0}, 30000),
            ({}, 15000), (None, 15000),  # STATUS_POLL_INTERVAL unset: 15 s
        ]:
            await ws.subscribe(requested)
            assert gateway.interval_ms(ws.sid) == scheduled, requested
            assert gateway.pollers == 1  # subscribing again replaced the poller

        # STATUS_POLL_INTERVAL is the default, clamped the same way (the gateway reads its settings).
        for configured, scheduled in (("20000", 20000), ("5000", 10000), ("600000", 120000)):
            env.update(STATUS_POLL_INTERVAL=configured)
            gateway.settings = get_settings()
            await ws.subscribe({})
            assert gateway.interval_ms(ws.sid) == scheduled, configured

        # The poller ticks on a 10 s grid: due times one interval apart (more only where a tick outlasted its
        # interval, which skips grid points), each tick started when due, never early.
        await ws.subscribe({"pollIntervalMs": 10000})
        state = gateway.socket_state(ws.sid)
        await eventually(lambda: len(state.schedule) >= 8)
        schedule = state.schedule[:8]
        steps = [b[0] - a[0] for a, b in zip(schedule, schedule[1:])]
        assert all(round(step / 10) >= 1 and step == pytest.approx(10 * round(step / 10)) for step in steps), steps
        assert steps.count(pytest.approx(10)) >= len(steps) // 2, steps
        lateness = sorted(started - due for due, started in schedule)
        assert lateness[0] >= 0 and lateness[len(lateness) // 2] < 2.5, lateness  # median < 50 ms real
        assert ws.errors == []


async def test_unsubscribe_stops_updates_and_disconnect_clears_timers(cloud, admin, plan):
    hanna = await customer(cloud, admin, "hanna@example.com")
    await servers_of(cloud, hanna, plan["id"], 1)
    clock = FastClock(200)  # 10 s = 50 ms
    async with socket_server(clock) as running, dashboards(3) as (one, two, three):
        gateway = running.gateway
        for client in (one, two, three):
            await client.connect(running.url, hanna)
            await client.subscribe({"pollIntervalMs": 10000})
        assert gateway.pollers == 3
        await one.wait_updates(3)

        await one.unsubscribe()
        assert gateway.interval_ms(one.sid) is None and gateway.pollers == 2
        stopped_at = len(one.updates)
        await two.wait_updates(len(two.updates) + 4)  # the others keep going meanwhile
        assert len(one.updates) == stopped_at and one.errors == []
        await one.unsubscribe()  # unsubscribing twice is harmless
        one.assert_up()

        three_sid = three.sid
        tasks = [gateway.socket_state(sid).poller.task for sid in (two.sid, three_sid)]
        await two.close()
        await three.close()
        await eventually(lambda: gateway.connected == 1 and gateway.pollers == 0)
        await eventually(lambda: all(task.done() for task in tasks))
        assert gateway.socket_state(three_sid) is None

        await one.subscribe()  # the remaining socket can start again
        assert gateway.pollers == 1


async def test_a_slow_tick_makes_the_next_ones_be_skipped(cloud, admin, plan, monkeypatch):
    ida = await customer(cloud, admin, "ida@example.com")
    await servers_of(cloud, ida, plan["id"], 1)
    release = asyncio.Event()
    running_now = {"count": 0, "max": 0, "calls": 0}
    real = dashboard.server_status

    async def slow_status(target):
        running_now["calls"] += 1
        running_now["count"] += 1
        running_now["max"] = max(running_now["max"], running_now["count"])
        try:
            if running_now["calls"] > 1:  # the first tick is quick, the next one hangs
                await release.wait()
            return await real(target)
        finally:
            running_now["count"] -= 1

    monkeypatch.setattr(dashboard, "server_status", slow_status)
    clock = FastClock(200)  # 10 s = 50 ms
    async with socket_server(clock) as running, dashboards() as (ws,):
        await ws.connect(running.url, ida)
        await ws.subscribe({"pollIntervalMs": 10000})
        state = running.gateway.socket_state(ws.sid)
        await eventually(lambda: running_now["calls"] == 2)
        await asyncio.sleep(0.4)  # eight intervals pass while the second tick hangs
        assert running_now["max"] == 1 and state.ticks == 1 and state.skipped == 0
        release.set()
        await ws.wait_updates(3)
        assert state.skipped >= 6  # the ticks that fell due while it hung were skipped, not queued
        assert running_now["max"] == 1


async def test_failures_skip_one_subscription_or_report_the_tick(cloud, admin, plan, fake_cloud, monkeypatch):
    jack = await customer(cloud, admin, "jack@example.com")
    good, gone = await servers_of(cloud, jack, plan["id"], 2)
    with fake_cloud.hetzner.lock:  # the provider no longer knows one server: 404 for its info
        server_id = next(k for k, s in fake_cloud.hetzner.servers.items() if s["name"] == gone["item"]["hostname"])
        del fake_cloud.hetzner.servers[server_id]
    clock = FastClock(200)
    async with socket_server(clock) as running, dashboards() as (ws,):
        await ws.connect(running.url, jack)
        await ws.subscribe({"pollIntervalMs": 10000})
        assert item_ids((await ws.wait_updates(1))[0]) == [good["item"]["id"]]
        assert ws.errors == []

        broken = {"on": True}
        real_load = dashboard.load_watch_lists

        async def load(user_ids):
            if broken["on"]:
                raise RuntimeError("database unavailable")
            return await real_load(user_ids)

        monkeypatch.setattr(dashboard, "load_watch_lists", load)
        await eventually(lambda: "Failed to load dashboard status" in ws.errors)
        assert running.gateway.interval_ms(ws.sid) == 10000  # polling continues
        broken["on"] = False
        seen = len(ws.updates)
        await ws.wait_updates(seen + 2)
        assert item_ids(ws.updates[-1]) == [good["item"]["id"]]

        # A subscribe whose first tick fails reports it the same way and still starts polling.
        broken["on"] = True
        ws.events.clear()
        await ws.subscribe({"pollIntervalMs": 10000})
        assert ws.errors[:1] == ["Failed to load dashboard status"]
        assert running.gateway.interval_ms(ws.sid) == 10000
        broken["on"] = False
        await ws.wait_updates(1)
        ws.assert_up()


async def test_many_sockets_share_one_provider_call_per_item_and_tick(cloud, admin, plan, fake_cloud):
    users = [await customer(cloud, admin, f"user{n}@example.com") for n in range(3)]
    items_per_user = [2, 1, 1]
    for token, count in zip(users, items_per_user, strict=True):
        await servers_of(cloud, token, plan["id"], count)
    item_count = sum(items_per_user)
    sockets_per_user = 8
    clock = FastClock(4)  # 10 s = 2.5 s: a few ticks in seconds, and room for the first round on a slow machine
    with fake_cloud.hetzner.lock:
        fake_cloud.hetzner.requests.clear()
    async with socket_server(clock) as running, dashboards(len(users) * sockets_per_user) as clients:
        gateway = running.gateway
        owners = {}
        for index, client in enumerate(clients):
            owners[client] = index % len(users)
            await client.connect(running.url, users[owners[client]])
        await asyncio.gather(*(c.subscribe({"pollIntervalMs": 10000}) for c in clients))
        # The first round of 24 snapshots cost one provider call per item.
        assert gateway.provider_calls == item_count
        assert server_reads(fake_cloud) == item_count

        await asyncio.gather(*(c.wait_updates(3, timeout=30) for c in clients))
        ticks = max(len(c.updates) for c in clients)
        calls = gateway.provider_calls
        naive = sum(len(c.updates) * items_per_user[owners[c]] for c in clients)  # one call per socket and item
        assert calls == server_reads(fake_cloud)
        assert calls <= item_count * (ticks + 1), (calls, ticks)
        assert calls * 4 < naive, (calls, naive)
        for client in clients:  # and everyone saw their own items only
            mine = len({i for u in client.updates for i in item_ids(u)})
            assert mine == items_per_user[owners[client]]
            assert client.errors == []


# ------------------------------------------------------------------------------------------- scale-out


REDIS_URL = os.environ.get("DECABILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


async def drain(pubsub, quiet: float = 0.5) -> list[dict[str, Any]]:
    """The messages published on the channel until it has been quiet for `quiet` seconds."""
    messages, deadline = [], time.monotonic() + quiet
    while time.monotonic() < deadline:
        message = await pubsub.get_message(timeout=0.05)  # None also for the subscribe confirmation
        if message is not None:
            messages.append(json.loads(message["data"]))
            deadline = time.monotonic() + quiet
    return messages


async def test_two_processes_on_redis_serve_one_namespace(cloud, env, admin, plan, database, tmp_path):
    """The in-process gateway and a `decabill socket` process share the namespace through Redis: each
    client gets its own updates from the process it is connected to; an emit to a socket of the other
    process is delivered through Redis; the periodic updates themselves never travel through Redis."""
    kate = await customer(cloud, admin, "kate@example.com")
    leo = await customer(cloud, admin, "leo@example.com")
    [kate_server] = await servers_of(cloud, kate, plan["id"], 1)
    [leo_server] = await servers_of(cloud, leo, plan["id"], 1)
    prefix = f"decabill-test-{uuid.uuid4().hex[:8]}"
    env.update(REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=prefix)
    channel = f"{prefix}:socketio"

    listener = aioredis.Redis.from_url(REDIS_URL)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    port = free_port()
    process_env = {**os.environ, "DATABASE_URL": database, "HOST": "127.0.0.1", "WEBSOCKET_PORT": str(port)}
    log = (tmp_path / "socket.log").open("w+")
    other = subprocess.Popen([sys.executable, "-m", "decabill.cli", "socket"], env=process_env, cwd=REPO,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        async with socket_server(FastClock(100)) as running, dashboards(2) as (here, there):
            await here.connect(running.url, kate)
            deadline = time.monotonic() + 30
            while not port_is_open(port):
                assert other.poll() is None, (tmp_path / "socket.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "socket.log").read_text()
                await asyncio.sleep(0.1)
            await there.connect(f"http://127.0.0.1:{port}", leo)

            await here.subscribe({"pollIntervalMs": 10000})
            await there.subscribe({"pollIntervalMs": 10000})
            assert item_ids((await here.wait_updates(1))[0]) == [kate_server["item"]["id"]]
            assert item_ids((await there.wait_updates(1))[0]) == [leo_server["item"]["id"]]
            assert running.gateway.socket_state(there.sid) is None  # not a socket of this process

            # An emit for the other process's socket goes through Redis and arrives there.
            probe = {"generatedAt": "2026-11-25T12:00:00.000Z", "items": []}
            before = len(there.updates)
            deadline = time.monotonic() + 10
            while len(there.updates) == before:  # the other process subscribes to the channel on its own time
                await running.gateway.emitter.dashboard_status_update(there.sid, probe)
                assert time.monotonic() < deadline, "nothing arrived through Redis"
                await asyncio.sleep(0.2)
            assert there.updates[-1] == probe
            assert probe not in here.updates

            published = await drain(pubsub)
            assert published and all(e["method"] == "emit" and e["room"] == there.sid for e in published)
            await here.wait_updates(len(here.updates) + 2)  # ticks of the local poller meanwhile...
            await running.gateway.emitter.error(here.sid, {"message": "local"})  # ...and an emit to a local socket
            await eventually(lambda: "local" in here.errors)
            assert await drain(pubsub) == []  # neither went through Redis
            here.assert_up()
            there.assert_up()
    finally:
        other.terminate()
        try:
            other.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            other.kill()
            other.wait()
        await pubsub.aclose()
        await listener.aclose()
        log.close()
    assert "Traceback" not in (tmp_path / "socket.log").read_text()


# ----------------------------------------------------------------------------------------- socket fuzz


@pytest.fixture
async def fuzz_target(cloud, admin, plan) -> AsyncIterator[tuple[Running, Dashboard, str]]:
    """The real gateway with one connected user who has one active server."""
    mona = await customer(cloud, admin, "mona@example.com")
    [server] = await servers_of(cloud, mona, plan["id"], 1)
    async with socket_server() as running, dashboards() as (ws,):
        await ws.connect(running.url, mona)
        yield running, ws, server["item"]["id"]


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(message=inbound_messages())
async def test_fuzz_real_handlers_never_drop_the_connection(fuzz_target, message) -> None:
    """Schema-generated and arbitrary payloads against the real handlers: every message conforms to its
    schema (checked in `Dashboard._any` and by the server's outbound validation), the connection stays."""
    running, ws, item_id = fuzz_target
    event, payload = message
    valid = gen.VALIDATORS[event].is_valid({} if payload is None else payload)
    sid, seen = ws.sid, len(ws.events)
    await ws.client.call(event, payload, namespace=NS, timeout=15)
    received = ws.events[seen:]
    if not valid:
        assert received[:1] and received[0][0] == ERROR, received
        assert received[0][1]["message"].startswith("Invalid payload: ")
    elif event == "subscribeDashboardStatus":
        await eventually(lambda: len(ws.events) > seen)
        received = ws.events[seen:]
        assert [name for name, _ in received] == [UPDATE], received
        assert item_ids(received[0][1]) == [item_id]
        interval = payload.get("pollIntervalMs") if isinstance(payload, dict) else None
        expected = dashboard.poll_interval_ms(interval, 15000)
        assert running.gateway.interval_ms(sid) == expected
    else:
        assert received == []
        assert running.gateway.interval_ms(sid) is None
    assert all(message != "Internal error" for message in ws.errors)
    ws.assert_up()
    assert ws.sid == sid and running.gateway.internal_errors == 0


async def test_a_subscription_suspended_for_an_unpaid_invoice_shows_it(cloud, admin, plan, fake_cloud):
    """Dunning (#22): a suspended subscription's item carries `suspendedAt`, and its server is shown stopped."""
    from decabill import db
    from decabill.subscriptions import service as subscriptions
    from decabill.tenancy import bound_tenant

    alice = await customer(cloud, admin, "alice@example.com")
    [server] = await servers_of(cloud, alice, plan["id"], 1)
    owner = uuid.UUID(jwt.decode(alice, options={"verify_signature": False})["sub"])
    with bound_tenant("default"):
        async with db.transaction() as session:
            await subscriptions.suspend(session, owner, invoice_id=uuid.uuid4(), invoice_number="INV-2026-00009",
                                        billable=True, now=db.utcnow())
        assert len((await subscriptions.stop_owed_servers(owner)).done) == 1

    async with socket_server() as running, dashboards(1) as (a,):
        await a.connect(running.url, alice)
        await a.subscribe()
        [update] = await a.wait_updates(1)
        [shown] = update["items"]
        assert shown["itemId"] == server["item"]["id"]
        assert shown["status"] == "off" and shown["suspendedAt"].endswith("Z")
        assert a.errors == []
