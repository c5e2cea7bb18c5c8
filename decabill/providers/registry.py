"""The provider registry: the built-ins, then the plugins, by id, in registration order (a plugin with a
built-in's id replaces it, as in the reference). Process-wide and the same for every tenant.

Both built-ins are always listed: one whose token is not configured still appears in
`getProviderDetails` (so service types can be prepared before the token is set, D24), and every
operation that needs its API answers 400 `<VAR> environment variable is not set`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from decabill.config import Settings, get_settings
from decabill.providers.base import ProvisioningProvider
from decabill.providers.digitalocean import DigitalOceanProvider
from decabill.providers.errors import ProviderNotSupported
from decabill.providers.hetzner import HetznerProvider
from decabill.providers.plugins import PROVISIONING_PROVIDERS_GROUP, load_plugins

MAX_ID_LENGTH = 100  # service_types.provider


class ProviderRegistry:
    def __init__(self) -> None:
        self._providers: dict[str, ProvisioningProvider] = {}

    def register(self, provider: ProvisioningProvider) -> None:
        self._providers[provider.id] = provider  # a known id is replaced in place (its position stays)

    def get(self, provider_id: str) -> ProvisioningProvider | None:
        return self._providers.get(provider_id)

    def require(self, provider_id: str) -> ProvisioningProvider:
        provider = self.get(provider_id)
        if provider is None:
            raise ProviderNotSupported()
        return provider

    def __iter__(self) -> Iterator[ProvisioningProvider]:
        return iter(list(self._providers.values()))

    def __contains__(self, provider_id: object) -> bool:
        return provider_id in self._providers


def as_provider(obj: object) -> ProvisioningProvider:
    """Accept a ProvisioningProvider subclass (constructed without arguments), an instance, or a
    zero-argument factory returning one; check what the registry and the API rely on."""
    if isinstance(obj, type):
        if not issubclass(obj, ProvisioningProvider):
            raise TypeError(f"{obj.__qualname__} is not a decabill ProvisioningProvider subclass")
        obj = obj()
    elif not isinstance(obj, ProvisioningProvider) and callable(obj):
        obj = obj()
    if not isinstance(obj, ProvisioningProvider):
        raise TypeError(f"{type(obj).__qualname__} is not a decabill ProvisioningProvider")
    provider_id = getattr(obj, "id", None)
    if not isinstance(provider_id, str) or not provider_id.strip() or len(provider_id) > MAX_ID_LENGTH:
        raise ValueError(f"provider id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    if not isinstance(getattr(obj, "display_name", None), str) or not obj.display_name.strip():
        raise ValueError("provider display_name must be a non-empty string")
    schema = obj.config_schema()
    if schema is not None:
        if not isinstance(schema, dict):
            raise TypeError("config_schema() must return a dict or None")
        json.dumps(schema, allow_nan=False)  # it is sent to clients as is
    return obj


def build_registry(settings: Settings) -> ProviderRegistry:
    """Built-ins from the settings, then the `decabill.provisioning_providers` entry points.
    Raises `PluginLoadError` for a broken plugin when `DYNAMIC_PROVIDERS_FAIL_FAST=true`."""
    options = {"timeout": settings.provider_timeout_seconds, "max_retries": settings.provider_max_retries,
               "cache_seconds": settings.provider_cache_seconds}
    registry = ProviderRegistry()
    registry.register(HetznerProvider(settings.hetzner_api_token, settings.hetzner_api_url, **options))
    registry.register(DigitalOceanProvider(settings.digitalocean_api_token, settings.digitalocean_api_url, **options))
    for provider in load_plugins(PROVISIONING_PROVIDERS_GROUP, as_provider,
                                 fail_fast=settings.dynamic_providers_fail_fast):
        registry.register(provider)
    return registry


_current: tuple[Settings, ProviderRegistry] | None = None


def init_registry(settings: Settings | None = None) -> ProviderRegistry:
    """Build the registry now (call at start-up so a broken plugin under fail-fast stops the process)."""
    global _current
    settings = settings or get_settings()
    registry = build_registry(settings)
    _current = (settings, registry)
    return registry


def get_registry() -> ProviderRegistry:
    """The registry of the current configuration (rebuilt when the settings object changes, e.g. in tests)."""
    settings = get_settings()
    if _current is None or _current[0] is not settings:
        return init_registry(settings)
    return _current[1]


def reset_registry() -> None:
    global _current
    _current = None
