"""Secrets at rest and in transit (behavior.md part A §7.4): configuration snapshots and SSH private keys are
encrypted with ENCRYPTION_KEY, the server's root password is never kept, and no secret appears in any API
response or log line."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from sqlalchemy import text

from decabill import db, secrets
from tests.subscriptions.conftest import hetzner_plan, only_item, order

SMTP_PASSWORD = "smtp-pass-7f3a9c"
STATIC_KEY = "static-key-51be02"
CLIENT_SECRET = "kc-secret-c0ffee"
HETZNER_TOKEN = "nested-hetzner-token-9d2e"
ROOT_PASSWORD = "root-pw-from-hetzner-4411"
SECRETS = [SMTP_PASSWORD, STATIC_KEY, CLIENT_SECRET, HETZNER_TOKEN, ROOT_PASSWORD]

REQUESTED = {
    "authenticationMethod": "api-key", "staticApiKey": STATIC_KEY, "hetznerApiToken": HETZNER_TOKEN,
    "smtp": {"host": "mail.example.com", "port": 587, "user": "mailer", "password": SMTP_PASSWORD},
    "keycloak": {"serverUrl": "https://id.example.com", "realm": "r", "clientId": "c", "clientSecret": CLIENT_SECRET},
}


async def _dump_database() -> str:
    """Every row of every table, as the database stores it."""
    from sqlmodel import SQLModel

    rows = []
    async with db.transaction() as session:
        for table in SQLModel.metadata.sorted_tables:
            result = await session.execute(text(f"SELECT * FROM {table.name}"))
            rows.extend(f"{table.name}: {tuple(row)}" for row in result)
    return "\n".join(rows)


@pytest.fixture
def known_root_password(monkeypatch):
    """The Hetzner fake answers server creation with a root password; make it recognisable."""
    import tests.fakes.hetzner as fake

    monkeypatch.setattr(fake.secrets, "token_urlsafe", lambda *_: ROOT_PASSWORD)


async def test_secrets_are_encrypted_at_rest_and_never_returned_or_logged(cloud, admin, customer, fake_cloud,
                                                                        known_root_password, caplog):
    caplog.set_level(logging.DEBUG)
    responses = []
    with structlog.testing.capture_logs() as logs:
        plan = await hetzner_plan(cloud, admin)
        subscription = await order(cloud, customer, plan["id"], requestedConfig=REQUESTED)
        responses.append(json.dumps(subscription))
        item = await only_item(cloud, customer, subscription["id"])
        base = f"/subscriptions/{subscription['id']}"
        for path in (base, f"{base}/items", "/subscriptions", f"{base}/items/{item['id']}/server-info"):
            responses.append((await cloud.get(path, token=customer)).text)
        responses.append((await cloud.post(f"{base}/items/{item['id']}/actions/restart", token=customer)).text)

        fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
        await order(cloud, customer, plan["id"], autoBackorder=True, requestedConfig=REQUESTED)
        backorders = await cloud.get("/backorders", token=customer)
        responses.append(backorders.text)
        backorder = backorders.json()[0]
        responses.append((await cloud.post(f"/backorders/{backorder['id']}/retry", token=customer)).text)

    # The provider got them (that is where they are needed) ...
    user_data = next(iter(fake_cloud.hetzner.servers.values()))["_user_data"]
    assert SMTP_PASSWORD in user_data and STATIC_KEY in user_data and CLIENT_SECRET in user_data
    # ... the API never shows them: the backorder's requested configuration comes back redacted.
    for body in responses:
        for value in SECRETS:
            assert value not in body
    snapshot = backorder["requestedConfigSnapshot"]
    assert snapshot["staticApiKey"] == "[redacted]" and snapshot["smtp"]["password"] == "[redacted]"
    assert snapshot["smtp"]["host"] == "mail.example.com" and snapshot["keycloak"]["clientSecret"] == "[redacted]"
    # ... and no log line carries them (nor the user data or a private key).
    logged = repr(logs) + caplog.text
    assert {"subscriptions.server_created", "subscriptions.backorder_created"} <= {e["event"] for e in logs}
    for value in [*SECRETS, "OPENSSH PRIVATE KEY", "#!/bin/bash"]:
        assert value not in logged

    # At rest: nothing readable in any table, the root password not stored at all.
    stored = await _dump_database()
    for value in [*SECRETS, "OPENSSH PRIVATE KEY"]:
        assert value not in stored
    async with db.transaction() as session:
        row = (await session.execute(text(
            "SELECT config_snapshot, ssh_private_key FROM subscription_items WHERE provider_reference IS NOT NULL"))).one()
        snapshot_row = (await session.execute(text("SELECT requested_config_snapshot FROM backorders"))).scalar_one()
    config = secrets.decrypt_json(row[0])
    assert config["smtp"]["password"] == SMTP_PASSWORD and config["staticApiKey"] == STATIC_KEY
    assert secrets.decrypt(row[1]).startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert secrets.decrypt_json(snapshot_row)["smtp"]["password"] == SMTP_PASSWORD
    assert len(row[0].split(":")) == 3  # base64(iv):base64(tag):base64(ciphertext)
