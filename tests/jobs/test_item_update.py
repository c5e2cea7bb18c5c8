"""The item update job: `docker compose up -d --pull=always` over SSH with the item's stored key, against an
SSH server (asyncssh) that this test runs on 127.0.0.1 with the host key cloud-init installed."""

from __future__ import annotations

import re
import uuid

import asyncssh
import pytest

from decabill.jobs import queue
from decabill.subscriptions import tasks, updates
from decabill.subscriptions.keys import generate_ed25519
from decabill.tenancy import bound_tenant
from models.subscriptions import SubscriptionItem
from tests.helpers import drain
from tests.jobs.conftest import load_row
from tests.subscriptions.conftest import digitalocean_plan, hetzner_plan, only_item, order


def _heredoc(user_data: str, path: str) -> str:
    match = re.search(rf"cat > {re.escape(path)} <<'DECABILL_EOF'\n(.*?)\nDECABILL_EOF", user_data, re.S)
    assert match, path
    return match.group(1)


class SshHost:
    """A stand-in for the provisioned server: the host key and authorized key from its cloud-init."""

    def __init__(self, user_data: str, exit_status: int = 0):
        self.host_key = asyncssh.import_private_key(_heredoc(user_data, "/etc/ssh/ssh_host_ed25519_key"))
        self.authorized = asyncssh.import_authorized_keys(_heredoc(user_data, "/root/.ssh/authorized_keys") + "\n")
        self.exit_status = exit_status
        self.commands: list[tuple[str, str]] = []
        self.port = 0
        self._server = None

    async def __aenter__(self) -> "SshHost":
        host = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn):
                self.conn = conn

            def begin_auth(self, username: str) -> bool:
                self.username = username
                return True

        async def handle(process: asyncssh.SSHServerProcess) -> None:
            host.commands.append((process.get_extra_info("username"), process.command))
            process.stdout.write("pulled\n")
            process.exit(host.exit_status)

        self._server = await asyncssh.listen("127.0.0.1", 0, server_factory=Server, server_host_keys=[self.host_key],
                                             authorized_client_keys=self.authorized, process_factory=handle)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def provisioned(cloud, admin, customer, fake_cloud, env):
    plan = await hetzner_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"])
    item = await only_item(cloud, customer, subscription["id"])
    server = next(iter(fake_cloud.hetzner.servers.values()))
    server["public_net"]["ipv4"]["ip"] = "127.0.0.1"  # the "server" is this test's SSH host
    return {"item": item, "user_data": server["_user_data"], "subscription": subscription}


async def test_the_update_runs_compose_over_ssh_with_the_items_key(provisioned, env):
    async with SshHost(provisioned["user_data"]) as host:
        env.update(SUBSCRIPTION_UPDATE_SSH_PORT=str(host.port))
        with bound_tenant("default"):
            assert await updates.items_to_update() == [uuid.UUID(provisioned["item"]["id"])]
            assert await updates.update_item(uuid.UUID(provisioned["item"]["id"])) == "updated"
    assert host.commands == [("root", "cd /opt/agent-controller && docker compose up -d --pull=always")]


async def test_the_coordinator_sends_one_unit_per_item_through_the_broker(provisioned, env):
    async with SshHost(provisioned["user_data"]) as host:
        env.update(SUBSCRIPTION_UPDATE_SSH_PORT=str(host.port))
        broker = queue.get_broker()
        await tasks.update_items.kiq()
        await drain(broker)
    assert len(host.commands) == 1


async def test_a_server_with_another_host_key_is_refused(provisioned, env):
    impostor = provisioned["user_data"].replace(
        _heredoc(provisioned["user_data"], "/etc/ssh/ssh_host_ed25519_key"), generate_ed25519().private_openssh)
    async with SshHost(impostor) as host:
        env.update(SUBSCRIPTION_UPDATE_SSH_PORT=str(host.port))
        with bound_tenant("default"), pytest.raises(updates.UpdateFailed, match="SSH to 127.0.0.1"):
            await updates.update_item(uuid.UUID(provisioned["item"]["id"]))
    assert host.commands == []


async def test_a_failing_command_fails_the_unit(provisioned, env):
    async with SshHost(provisioned["user_data"], exit_status=1) as host:
        env.update(SUBSCRIPTION_UPDATE_SSH_PORT=str(host.port))
        with bound_tenant("default"), pytest.raises(updates.UpdateFailed, match="exited with status 1"):
            await updates.update_item(uuid.UUID(provisioned["item"]["id"]))


async def test_only_running_subscriptions_are_updated(provisioned, cloud, customer, env):
    subscription_id = provisioned["subscription"]["id"]
    from models.subscriptions import Subscription
    from tests.jobs.conftest import update_row

    await update_row(Subscription, subscription_id, status="canceled")
    with bound_tenant("default"):
        assert await updates.items_to_update() == []
        assert await updates.update_item(uuid.UUID(provisioned["item"]["id"])) == "skipped"


async def test_a_manager_is_updated_in_its_own_directory(cloud, admin, customer, fake_cloud, env):
    plan = await digitalocean_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"])
    item = await only_item(cloud, customer, subscription["id"])
    droplet = next(iter(fake_cloud.digitalocean.droplets.values()))
    for network in droplet["networks"]["v4"]:
        if network["type"] == "public":
            network["ip_address"] = "127.0.0.1"
    assert (await load_row(SubscriptionItem, item["id"])).service == "manager"
    async with SshHost(droplet["_user_data"]) as host:
        env.update(SUBSCRIPTION_UPDATE_SSH_PORT=str(host.port))
        with bound_tenant("default"):
            assert await updates.update_item(uuid.UUID(item["id"])) == "updated"
    assert host.commands == [("root", "cd /opt/agent-manager && docker compose up -d --pull=always")]
