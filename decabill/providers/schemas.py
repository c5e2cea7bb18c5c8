"""Configuration schemas of the built-in providers, as `getProviderDetails` returns them
(behavior.md part A §4.2). Both describe the agent-controller / agent-manager stacks that the
cloud-init script of a subscription installs; they differ only in the geography field and firewall."""

from __future__ import annotations

import copy
from typing import Any

HETZNER_LOCATIONS = ["fsn1", "nbg1", "hel1", "ash", "hil", "sgp"]
DIGITALOCEAN_REGIONS = ["ams3", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1"]


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


_COMMON: dict[str, dict[str, Any]] = {
    "service": _string("Which stack the server runs", enum=["controller", "manager"]),
    "serverType": _string("Server type (machine size) at the provider; sets the base price"),
    "authenticationMethod": _string("Authentication method of the installed service (users, api-key or keycloak)"),
    "staticApiKey": _string("Static API key of the installed service (api-key mode)"),
    "disableSignup": {"type": "boolean", "description": "Disable self-signup on the installed service"},
    "smtp": {
        "type": "object",
        "description": "Outgoing mail of the installed service",
        "properties": {
            "host": _string("SMTP host"),
            "port": {"type": "number", "description": "SMTP port"},
            "user": _string("SMTP user"),
            "password": _string("SMTP password"),
            "from": _string("Sender address"),
        },
    },
    "keycloak": {
        "type": "object",
        "description": "Keycloak settings of the installed service (keycloak mode)",
        "properties": {
            "serverUrl": _string("Keycloak server URL"),
            "authServerUrl": _string("Keycloak URL as seen by browsers"),
            "realm": _string("Realm"),
            "clientId": _string("Client id"),
            "clientSecret": _string("Client secret"),
        },
    },
    "hetznerApiToken": _string("Hetzner Cloud API token handed to the installed service"),
    "digitaloceanApiToken": _string("DigitalOcean API token handed to the installed service"),
    "git": {
        "type": "object",
        "description": "Workspace repository of an agent-manager",
        "properties": {
            "setupMode": _string("Clone an existing repository or start empty", enum=["clone", "empty"]),
            "repositoryUrl": _string("Repository URL"),
            "username": _string("Git user name"),
            "token": _string("Git access token"),
            "password": _string("Git password"),
            "privateKey": _string("SSH private key for the repository"),
            "commitAuthorName": _string("Commit author name"),
            "commitAuthorEmail": _string("Commit author email"),
        },
    },
    "cursorApiKey": _string("Cursor API key of an agent-manager"),
}


def hetzner_schema() -> dict[str, Any]:
    properties = copy.deepcopy(_COMMON)
    properties["location"] = _string("Hetzner Cloud location", enum=list(HETZNER_LOCATIONS))
    properties["firewallId"] = {"type": "number", "description": "Hetzner Cloud firewall applied to the server"}
    return {"type": "object", "required": ["serverType", "location", "service"], "basePriceFromField": "serverType",
            "properties": properties}


def digitalocean_schema() -> dict[str, Any]:
    properties = copy.deepcopy(_COMMON)
    properties["region"] = _string("DigitalOcean region", enum=list(DIGITALOCEAN_REGIONS))
    return {"type": "object", "required": ["serverType", "region", "service"], "basePriceFromField": "serverType",
            "properties": properties}
