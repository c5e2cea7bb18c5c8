"""Provisioning providers: the interface (`base`), the built-ins (`hetzner`, `digitalocean`), the
registry and plugin loading. Import what you need from here."""

from decabill.providers.base import (
    AvailabilityResult,
    CreateServerRequest,
    ProvisionedServer,
    ProvisioningProvider,
    RegionPrice,
    ServerInfo,
    ServerType,
)
from decabill.providers.errors import (
    PluginLoadError,
    ProviderCapacityError,
    ProviderNotConfigured,
    ProviderNotSupported,
    ProviderRequestFailed,
    ServerNotFound,
)
from decabill.providers.plugins import (
    PAYMENT_PROCESSORS_GROUP,
    PROVISIONING_PROVIDERS_GROUP,
    load_payment_processors,
    load_plugins,
)
from decabill.providers.registry import ProviderRegistry, get_registry, init_registry, reset_registry

__all__ = [
    "AvailabilityResult", "CreateServerRequest", "ProvisionedServer", "ProvisioningProvider", "RegionPrice",
    "ServerInfo", "ServerType", "PluginLoadError", "ProviderCapacityError", "ProviderNotConfigured",
    "ProviderNotSupported", "ProviderRequestFailed", "ServerNotFound", "PAYMENT_PROCESSORS_GROUP",
    "PROVISIONING_PROVIDERS_GROUP", "load_payment_processors", "load_plugins", "ProviderRegistry", "get_registry",
    "init_registry", "reset_registry",
]
