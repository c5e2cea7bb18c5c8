"""Cloud-init user data (behavior.md part A §7.5): valid bash, keys in place, the configuration quoted so
nothing in it is interpreted, and small enough for the providers' limits."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from decabill.subscriptions.cloud_init import UserDataInput, _env_value, build_user_data
from decabill.subscriptions.keys import generate_ed25519


def _input(service: str = "controller", **config) -> UserDataInput:
    client, host = generate_ed25519(), generate_ed25519()
    return UserDataInput(service=service, config=config, hostname="brave-otter-k2x9q", base_domain="decabill.test",
                         authorized_key=client.public_openssh, host_private_key=host.private_openssh,
                         host_public_key=host.public_openssh, lets_encrypt_email="ops@example.com")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("service", ["controller", "manager"])
def test_the_script_is_valid_bash_within_the_size_limits(service):
    data = _input(service, smtp={"password": "p'$(rm -rf /)\"\\"}, staticApiKey="k`id`",
                  git={"token": "t\nDECABILL_EOF\nrm -rf /"})
    script = build_user_data(data)
    assert script.startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert len(script.encode()) < 32 * 1024  # Hetzner's limit (DigitalOcean allows 64 KiB)
    assert f"cd /opt/agent-{service}" in script and "docker compose up -d --pull=always" in script
    assert data.authorized_key in script and data.host_public_key in script
    assert "brave-otter-k2x9q.decabill.test" in script
    # the heredoc delimiter inside a value cannot end the .env block early
    assert len(re.findall(r"^DECABILL_EOF$", script, re.M)) == script.count("<<'DECABILL_EOF'")


def test_each_instance_gets_fresh_secrets():
    first, second = build_user_data(_input()), build_user_data(_input())
    secret = re.compile(r"^(ENCRYPTION_KEY|JWT_SECRET|POSTGRES_PASSWORD)='([^']+)'$", re.M)
    assert len(secret.findall(first)) == 3
    assert not set(v for _, v in secret.findall(first)) & set(v for _, v in secret.findall(second))


def test_env_values_are_quoted_literally():
    assert _env_value("plain") == "'plain'"
    assert _env_value(True) == "'true'" and _env_value(None) == "''" and _env_value(587) == "'587'"
    assert _env_value("it's $HOME") == "\"it's $$HOME\""
    assert _env_value("a\nb") == '"a\\nb"'
