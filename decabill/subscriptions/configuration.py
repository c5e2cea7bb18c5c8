"""The effective configuration of an order (behavior.md part A §6.3 steps 3–8).

    effective = {**plan.providerConfigDefaults, **requestedConfig}      (region/location dropped from the
                                                                         request unless the plan allows it)

then, for the built-in providers, one geography (`region`, else `location`, else the provider's default)
written to both keys, `service` defaulting to `controller` (a `manager` never runs `users` auth), and
`serverType` defaulting to the provider's smallest current size. The result is checked against the
*merged* schema: the registered provider's `configSchema` with the service type's own schema laid over
it (its properties win, `required` lists are joined), so a service type left at `{}` still gets the
provider's rules. Checks (top level, as the reference): required keys present and not null, declared
`type` (string, number, integer, boolean, object, array) and non-empty `enum`. Undeclared keys are allowed.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from decabill.validation import json_value
from decabill.errors import BadRequest
from decabill.providers import ProvisioningProvider
from decabill.subscriptions.errors import InvalidConfiguration

GEOGRAPHY_FIELDS = ("region", "location")
BUILT_IN_DEFAULTS = {
    # provider id -> (default geography, default server type). The reference's Hetzner default `cx11` is
    # deprecated at Hetzner; `cx22` is its successor.
    "hetzner": ("fsn1", "cx22"),
    "digital-ocean": ("fra1", "s-1vcpu-1gb"),
}
SECRET_KEY_PATTERN = re.compile(r"(password|secret|token|api_?key|private_?key)", re.IGNORECASE)
REDACTED = "[redacted]"


@dataclass(frozen=True)
class EffectiveConfig:
    values: dict[str, Any]
    service: str  # controller | manager
    region: str | None
    server_type: str | None
    firewall_id: int | None


def sanitize_request(requested: dict[str, Any] | None, *, allow_location: bool) -> dict[str, Any]:
    """The customer's request as stored with a backorder: storable JSON, geography only where allowed."""
    requested = copy.deepcopy(requested or {})
    json_value(requested, "Requested config")
    if not allow_location:
        for name in GEOGRAPHY_FIELDS:
            requested.pop(name, None)
    return requested


def merged_schema(type_schema: Any, provider: ProvisioningProvider | None) -> dict[str, Any]:
    base = (provider.config_schema() if provider is not None else None) or {}
    own = type_schema if isinstance(type_schema, dict) else {}
    properties = {**(base.get("properties") or {}), **(own.get("properties") or {})}
    required = list(dict.fromkeys([*(base.get("required") or []), *(own.get("required") or [])]))
    return {"properties": properties, "required": required}


def _type_ok(value: Any, expected: str) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    return True  # a type we do not know: the reference did not check it either


def validate_config(config: dict[str, Any], schema: dict[str, Any]) -> None:
    problems: list[str] = []
    for key in schema.get("required") or []:
        if config.get(key) is None:
            problems.append(f"Missing required config field: {key}")
    for key, declared in (schema.get("properties") or {}).items():
        value = config.get(key)
        if value is None or not isinstance(declared, dict):
            continue
        expected = declared.get("type")
        if isinstance(expected, str) and not _type_ok(value, expected):
            problems.append(f"Invalid type for config field {key}: expected {expected}")
            continue
        allowed = declared.get("enum")
        if isinstance(allowed, list) and allowed and value not in allowed:
            problems.append(f"Invalid value for config field {key}: must be one of allowed options")
    if problems:
        raise InvalidConfiguration(problems)


def effective_config(defaults: Any, requested: dict[str, Any], *, provider_id: str,
                     provider: ProvisioningProvider | None, type_schema: Any) -> EffectiveConfig:
    values = {**(copy.deepcopy(defaults) if isinstance(defaults, dict) else {}), **copy.deepcopy(requested)}
    builtin = BUILT_IN_DEFAULTS.get(provider_id)
    if builtin is not None:
        chosen = next((values[f].strip() for f in GEOGRAPHY_FIELDS
                       if isinstance(values.get(f), str) and values[f].strip()), None)
        values["region"] = values["location"] = chosen or builtin[0]
        if values.get("serverType") is None:
            values["serverType"] = builtin[1]
    if values.get("service") is None:
        values["service"] = "controller"
    if values.get("service") == "manager" and values.get("authenticationMethod") not in ("api-key", "keycloak"):
        values["authenticationMethod"] = "api-key"  # a manager never runs the `users` mode
    validate_config(values, merged_schema(type_schema, provider))
    region = next((values[f] for f in GEOGRAPHY_FIELDS if isinstance(values.get(f), str)), None)
    server_type = values.get("serverType") if isinstance(values.get("serverType"), str) else None
    firewall = values.get("firewallId")
    if firewall is not None and not (isinstance(firewall, (int, float)) and not isinstance(firewall, bool)
                                     and float(firewall).is_integer()):
        raise BadRequest("Invalid type for config field firewallId: expected number")
    return EffectiveConfig(values=values, service="manager" if values.get("service") == "manager" else "controller",
                           region=region, server_type=server_type,
                           firewall_id=int(firewall) if firewall is not None else None)


def redact(value: Any) -> Any:
    """A copy of a configuration safe to show: values under secret-looking keys (password, token,
    secret, api key, private key) are replaced by "[redacted]"."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEY_PATTERN.search(str(k)) and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
