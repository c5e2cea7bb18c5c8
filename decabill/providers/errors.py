"""Errors of the provider layer. All but `PluginLoadError` are domain errors that the API answers as
400 with the reference's messages (behavior.md part A §4.6, §4.7, §7.1)."""

from __future__ import annotations

from decabill.config import ConfigurationError
from decabill.errors import BadRequest


class ProviderNotSupported(BadRequest):
    """No provider with this id is registered (D19: the contract's 400, not the reference's `[]`)."""

    def __init__(self) -> None:
        super().__init__("Provider not supported")


class ProviderNotConfigured(BadRequest):
    """A built-in provider whose API token is not set: it is listed, but cannot reach its API."""

    def __init__(self, variable: str) -> None:
        self.variable = variable
        super().__init__(f"{variable} environment variable is not set")


class ProviderRequestFailed(BadRequest):
    """The provider's API refused or failed a call: `Failed to <action>: <what the provider said>`.

    `code` is the provider's error code (Hetzner `error.code`, DigitalOcean `id`) or the HTTP status,
    when known; callers branch on the subclass, never on the text.
    """

    def __init__(self, action: str, detail: str, *, code: str | int | None = None) -> None:
        self.action = action
        self.detail = detail
        self.code = code
        super().__init__(f"Failed to {action}: {detail}")

    def for_action(self, action: str) -> "ProviderRequestFailed":
        """The same failure, reported for the operation the caller was doing."""
        return type(self)(action, self.detail, code=self.code)


class ProviderCapacityError(ProviderRequestFailed):
    """The provider has no capacity for the request right now (sold-out type/location, account server
    limit). Ordering turns this into a backorder when the customer asked for one."""


class ServerNotFound(BadRequest):
    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        super().__init__(f"Server {server_id} not found")


class PluginLoadError(ConfigurationError):
    """A plugin entry point could not be loaded while `DYNAMIC_PROVIDERS_FAIL_FAST=true`: start-up stops."""
