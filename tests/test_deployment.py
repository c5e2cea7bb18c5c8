"""The container deployment (issue #15) reads every documented variable: compose.yaml hands the whole `.env` to the
Decabill containers, `.env.example` lists every variable of README "Configuration" and docs/configuration.md (and
every setting decabill/config.py reads), and nothing in compose.yaml or the Dockerfile pins a documented variable
so that `.env` could not change it. Parsed, no Docker daemon needed."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from decabill.config import Settings

REPO = Path(__file__).resolve().parents[1]
NAME = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")
#: read by libraries or the runtime rather than by Settings, documented all the same
NOT_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR"}


def documented() -> set[str]:
    """The variables in the first column of the tables of README "Configuration" and docs/configuration.md."""
    readme = (REPO / "README.md").read_text()
    configuration = readme[readme.index("## Configuration"):readme.index("\n## ", readme.index("## Configuration") + 5)]
    names: set[str] = set()
    for text in (configuration, (REPO / "docs/configuration.md").read_text()):
        for line in text.splitlines():
            if line.startswith("| `"):
                names.update(NAME.findall(line.split("|")[1]))
    return names


def env_example() -> dict[str, str | None]:
    """Every variable of .env.example: its value when set, None when only listed (commented out)."""
    variables: dict[str, str | None] = {}
    for number, line in enumerate((REPO / ".env.example").read_text().splitlines(), 1):
        if match := re.match(r"^# ([A-Z][A-Z0-9_]+)=", line):
            variables.setdefault(match.group(1), None)
        elif line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]+", name), f".env.example line {number} is not NAME=value"
            assert name not in variables or variables[name] is None, f"{name} is set twice"
            variables[name] = value
    return variables


def decabill_services() -> dict[str, dict]:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())  # `<<: *decabill` merges are resolved here
    return {name: service for name, service in compose["services"].items() if service.get("build") == "."}


def test_every_documented_variable_and_every_setting_is_in_env_example():
    listed = set(env_example())
    settings = {field.alias for field in Settings.model_fields.values() if field.alias}
    assert len(documented()) > 100
    assert documented() - listed == set()
    assert settings - documented() == set(), "document these settings in README or docs/configuration.md"
    assert listed - documented() == set()
    assert NOT_SETTINGS <= documented() and not NOT_SETTINGS & settings


def test_the_production_values_are_set_in_env_example():
    values = env_example()
    for name in ("DB_PASSWORD", "JWT_SECRET", "ENCRYPTION_KEY", "NODE_ENV", "AUTHENTICATION_METHOD", "SMTP_HOST",
                 "SMTP_USER", "SMTP_PASSWORD", "EMAIL_FROM", "HETZNER_API_TOKEN", "DIGITALOCEAN_API_TOKEN",
                 "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ZONE_ID", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
                 "BILLING_ISSUER_NAME", "BILLING_ISSUER_VAT_ID", "BILLING_ISSUER_ADDRESS_LINE1",
                 "BILLING_ISSUER_POSTAL_CODE", "BILLING_ISSUER_CITY", "BILLING_ISSUER_EMAIL"):
        assert values[name] is not None, f"{name} must be a line to fill in, not a comment"
    assert values["NODE_ENV"] == "production"


def test_compose_hands_env_to_every_decabill_container_and_pins_nothing_documented():
    services = decabill_services()
    assert {"decabill", "worker"} <= set(services)
    names = documented()
    for name, service in services.items():
        assert ".env" in service["env_file"], name
        for variable, value in (service.get("environment") or {}).items():
            # compose's own values (its postgres and redis) must give way to .env: ${NAME:-default} / ${NAME:?...}
            if variable in names:
                assert re.fullmatch(rf"\$\{{{variable}(:[-?][^}}]*)?\}}", str(value)), f"{name}: {variable}={value}"
    assert services["worker"]["command"] == ["worker"]


def test_the_dockerfile_installs_the_package_and_only_defaults_documented_variables():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --no-cache-dir ." in dockerfile  # the dependencies of pyproject.toml, redis included
    assert 'ENTRYPOINT ["decabill"]' in dockerfile
    assert "ARG " not in dockerfile  # nothing fixed at build time: the environment configures the container
    defaults = re.findall(r"\b([A-Z][A-Z0-9_]+)=", dockerfile.split("ENV", 1)[1].split("EXPOSE", 1)[0])
    assert defaults and set(defaults) <= documented()
    for package in ("decabill", "handlers", "models", "spec"):
        assert f"COPY {package} ./{package}" in dockerfile
