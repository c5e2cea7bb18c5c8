"""The server half of the provider interface (create, info, power, delete) for the built-ins, with the
real `hcloud` and `pydo` clients against the local fakes. The subscriptions area drives these over HTTP;
until then they are exercised here directly."""

from __future__ import annotations

import asyncio
import gc
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from decabill.providers import (
    CreateServerRequest,
    ProviderCapacityError,
    ProviderNotConfigured,
    ProviderRequestFailed,
    ServerNotFound,
)
from decabill.providers.digitalocean import DigitalOceanProvider
from decabill.providers.hetzner import HetznerProvider
from decabill.providers.sync_api import _MAX_CLIENTS_PER_THREAD

USER_DATA = "#!/bin/bash\necho hello\n"


@pytest.fixture
def cloud(fake_cloud):
    fake_cloud.reset()
    return fake_cloud


@pytest.fixture
def hetzner(cloud) -> HetznerProvider:
    return HetznerProvider(cloud.hetzner_token, cloud.hetzner_url, max_retries=0, timeout=5)


@pytest.fixture
def digitalocean(cloud) -> DigitalOceanProvider:
    return DigitalOceanProvider(cloud.do_token, cloud.do_url, max_retries=0, timeout=5)


async def test_hetzner_server_lifecycle(hetzner, cloud):
    created = await hetzner.create_server(CreateServerRequest(
        name="sub-1", server_type="cx22", region="nbg1", user_data=USER_DATA, firewall_id=77, labels={"tenant": "acme"}))
    assert created.server_id.isdigit() and created.name == "sub-1" and created.public_ip
    sent = next(r for r in cloud.hetzner.requests if r["method"] == "POST" and r["path"] == "/v1/servers")["json"]
    assert sent["server_type"] == "cx22" and sent["location"] == "nbg1" and sent["image"] == "ubuntu-22.04"
    assert sent["user_data"] == USER_DATA and sent["labels"] == {"tenant": "acme"}
    assert sent["firewalls"] == [{"firewall": 77}]

    info = await hetzner.server_info(created.server_id)
    assert (info.name, info.status, info.public_ip, info.private_ip) == ("sub-1", "running", created.public_ip, None)
    assert info.metadata == {"location": "nbg1", "serverType": "cx22"}

    await hetzner.stop_server(created.server_id)
    assert (await hetzner.server_info(created.server_id)).status == "off"
    await hetzner.start_server(created.server_id)
    await hetzner.restart_server(created.server_id)
    assert [r["path"].rsplit("/", 1)[-1] for r in cloud.hetzner.requests if "/actions/" in r["path"]] == \
        ["poweroff", "poweron", "reboot"]

    await hetzner.delete_server(created.server_id)
    await hetzner.delete_server(created.server_id)  # already gone: fine
    with pytest.raises(ServerNotFound, match=f"Server {created.server_id} not found"):
        await hetzner.server_info(created.server_id)
    with pytest.raises(ServerNotFound):
        await hetzner.start_server(created.server_id)
    with pytest.raises(ServerNotFound):
        await hetzner.server_info("not-a-number")


async def test_hetzner_failures(hetzner, cloud):
    cloud.hetzner.capacity[("cx22", "fsn1")] = False
    request = CreateServerRequest(name="a", server_type="cx22", region="fsn1", user_data=USER_DATA)
    with pytest.raises(ProviderCapacityError, match="Failed to provision server: server type cx22 unavailable") as no_room:
        await hetzner.create_server(request)
    assert no_room.value.code == "resource_unavailable" and no_room.value.status_code == 400
    cloud.hetzner.max_servers = 0
    with pytest.raises(ProviderCapacityError, match="server limit exceeded"):
        await hetzner.create_server(CreateServerRequest(name="b", server_type="cx22", region="nbg1"))
    cloud.hetzner.max_servers = None
    with pytest.raises(ProviderRequestFailed, match="Failed to provision server: server type not found") as wrong:
        await hetzner.create_server(CreateServerRequest(name="c", server_type="cx999", region="nbg1"))
    assert not isinstance(wrong.value, ProviderCapacityError)
    with pytest.raises(ProviderRequestFailed, match=r"User data size \(40000 bytes\) exceeds Hetzner limit of 32768 bytes"):
        await hetzner.create_server(CreateServerRequest(name="d", server_type="cx22", region="nbg1", user_data="x" * 40000))
    cloud.hetzner.fail_next("locked", 423, "server is locked", path="/actions/")
    created = await hetzner.create_server(CreateServerRequest(name="e", server_type="cx22", region="nbg1"))
    with pytest.raises(ProviderRequestFailed, match="Failed to stop server: server is locked"):
        await hetzner.stop_server(created.server_id)
    with pytest.raises(ProviderNotConfigured, match="HETZNER_API_TOKEN environment variable is not set"):
        await HetznerProvider(None, cloud.hetzner_url).server_info("1")


async def test_hetzner_retries_when_configured(cloud):
    retrying = HetznerProvider(cloud.hetzner_token, cloud.hetzner_url, max_retries=1, cache_seconds=0)
    cloud.hetzner.rate_limit(times=1)
    started = time.monotonic()
    assert {t.id for t in await retrying.server_types()} >= {"cx22"}  # the second attempt succeeds
    assert time.monotonic() - started < 5
    assert len([r for r in cloud.hetzner.requests if r["path"] == "/v1/server_types"]) == 2


async def test_digitalocean_droplet_lifecycle(digitalocean, cloud):
    created = await digitalocean.create_server(CreateServerRequest(
        name="sub-2", server_type="s-1vcpu-1gb", region="fra1", user_data=USER_DATA, labels={"tenant": "acme"}))
    assert created.server_id.isdigit() and created.status == "new" and created.public_ip is None
    sent = next(r for r in cloud.digitalocean.requests if r["method"] == "POST")["json"]
    assert sent == {"name": "sub-2", "region": "fra1", "size": "s-1vcpu-1gb", "image": "ubuntu-22-04-x64",
                    "tags": ["tenant:acme"], "user_data": USER_DATA}

    first = await digitalocean.server_info(created.server_id)  # new droplets have no address yet
    assert (first.status, first.public_ip) == ("new", "")
    info = await digitalocean.server_info(created.server_id)
    assert (info.status, info.public_ip, info.private_ip) == ("active", info.public_ip, info.private_ip)
    assert info.public_ip.startswith("127.0.0.") and info.private_ip.startswith("10.110.")
    assert info.metadata == {"region": "fra1", "regionName": "Frankfurt 1"}

    await digitalocean.stop_server(created.server_id)
    assert (await digitalocean.server_info(created.server_id)).status == "off"
    await digitalocean.start_server(created.server_id)
    await digitalocean.restart_server(created.server_id)
    assert [r["json"]["type"] for r in cloud.digitalocean.requests if r["path"].endswith("/actions")] == \
        ["power_off", "power_on", "reboot"]

    await digitalocean.delete_server(created.server_id)
    await digitalocean.delete_server(created.server_id)  # pydo returns the 404 body: already gone, fine
    with pytest.raises(ServerNotFound):
        await digitalocean.server_info(created.server_id)
    with pytest.raises(ServerNotFound):
        await digitalocean.restart_server(created.server_id)


async def test_digitalocean_failures(digitalocean, cloud):
    with pytest.raises(ProviderCapacityError, match="Failed to provision server: Size is not available in this region."):
        await digitalocean.create_server(CreateServerRequest(name="a", server_type="s-4vcpu-8gb", region="sfo3"))
    cloud.digitalocean.droplet_limit = 0
    with pytest.raises(ProviderCapacityError, match="droplet limit"):
        await digitalocean.create_server(CreateServerRequest(name="b", server_type="s-1vcpu-1gb", region="fra1"))
    cloud.digitalocean.droplet_limit = None
    with pytest.raises(ProviderRequestFailed, match="invalid size") as wrong:
        await digitalocean.create_server(CreateServerRequest(name="c", server_type="huge", region="fra1"))
    assert not isinstance(wrong.value, ProviderCapacityError)
    with pytest.raises(ProviderRequestFailed, match=r"User data size \(65537 bytes\) exceeds DigitalOcean limit of 65536 bytes"):
        await digitalocean.create_server(CreateServerRequest(name="d", server_type="s-1vcpu-1gb", region="fra1",
                                                             user_data="x" * 65537))
    cloud.digitalocean.rate_limit()
    with pytest.raises(ProviderRequestFailed, match="Failed to get server info: API Rate limit exceeded."):
        await digitalocean.server_info("1")
    with pytest.raises(ProviderNotConfigured, match="DIGITALOCEAN_API_TOKEN environment variable is not set"):
        await DigitalOceanProvider(None, cloud.do_url).delete_server("1")


def _keep_alive_ports(server_port: int) -> set[int]:
    """Local ports of this machine's open (ESTABLISHED) IPv4 connections to `server_port` (the fake's)."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "01" and int(remote.rsplit(":", 1)[1], 16) == server_port:
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def test_library_clients_per_thread_are_bounded_and_the_least_recently_used_is_closed(cloud):
    """Each worker thread keeps at most `_MAX_CLIENTS_PER_THREAD` library clients (one per settings); the least
    recently used is evicted and closed — its keep-alive connection goes away with it — and a client in use is
    kept (its connection reused)."""
    server_port = int(cloud.url.rsplit(":", 1)[1])
    providers = [HetznerProvider(cloud.hetzner_token, cloud.hetzner_url, max_retries=0, timeout=5 + n, cache_seconds=0)
                 for n in range(_MAX_CLIENTS_PER_THREAD + 1)]  # distinct settings: one client each

    async def scenario() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))  # one worker thread
        before = _keep_alive_ports(server_port)

        async def use(provider: HetznerProvider) -> set[int]:
            assert await provider.server_types()
            return _keep_alive_ports(server_port) - before

        for provider in providers[:-1]:
            opened = await use(provider)
        assert len(opened) == _MAX_CLIENTS_PER_THREAD  # one kept-alive connection per client
        assert await use(providers[0]) == opened  # reused: no new connection, and now the most recently used
        after_eviction = await use(providers[-1])  # one client too many: the least recently used (#1) is closed
        assert len(after_eviction) == _MAX_CLIENTS_PER_THREAD and len(after_eviction - opened) == 1
        assert await use(providers[0]) == after_eviction  # #0 was kept: its connection is reused

    gc.disable()  # a client dropped without closing would keep its connection until collected: don't hide that
    try:
        asyncio.run(scenario())
    finally:
        gc.enable()
