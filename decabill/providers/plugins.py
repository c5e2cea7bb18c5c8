"""Plugins as Python entry points — our equivalent of the reference's dynamic provider packages.

A distribution declares, in its pyproject.toml:

    [project.entry-points."decabill.provisioning_providers"]
    my-cloud = "my_package.provider:MyCloudProvider"     # a ProvisioningProvider subclass

    [project.entry-points."decabill.payment_processors"]
    my-pay = "my_package.payments:MyProcessor"

A plugin that fails to import or does not fit the interface is logged and skipped, or stops start-up
when `DYNAMIC_PROVIDERS_FAIL_FAST=true`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

import structlog

from decabill.providers.errors import PluginLoadError

log = structlog.get_logger("decabill.plugins")

PROVISIONING_PROVIDERS_GROUP = "decabill.provisioning_providers"
PAYMENT_PROCESSORS_GROUP = "decabill.payment_processors"

T = TypeVar("T")


def load_plugins(group: str, accept: Callable[[Any], T], *, fail_fast: bool) -> list[T]:
    """Load every entry point of `group` and pass the loaded object through `accept`, which returns
    the plugin (e.g. an instance) or raises TypeError/ValueError when the object does not fit."""
    plugins: list[T] = []
    for entry_point in sorted(entry_points(group=group), key=lambda ep: ep.name):
        try:
            plugins.append(accept(entry_point.load()))
        except Exception as exc:  # noqa: BLE001 - any failure of third-party code is a plugin failure
            message = (f"Could not load plugin '{entry_point.name}' ({entry_point.value}) "
                       f"of entry point group {group}: {type(exc).__name__}: {exc}")
            if fail_fast:
                log.error("plugin.load_failed", group=group, plugin=entry_point.name, error=str(exc), fail_fast=True)
                raise PluginLoadError(message) from exc
            log.error("plugin.load_failed", group=group, plugin=entry_point.name, error=str(exc),
                      detail=message, skipped=True)
        else:
            log.info("plugin.loaded", group=group, plugin=entry_point.name)
    return plugins


def load_payment_processors(accept: Callable[[Any], T], *, fail_fast: bool | None = None) -> list[T]:
    """Payment processor plugins (`decabill.payment_processors`); the payments area supplies `accept`
    (its interface check). `fail_fast` defaults to `DYNAMIC_PROVIDERS_FAIL_FAST`."""
    if fail_fast is None:
        from decabill.config import get_settings

        fail_fast = get_settings().dynamic_providers_fail_fast
    return load_plugins(PAYMENT_PROCESSORS_GROUP, accept, fail_fast=fail_fast)
