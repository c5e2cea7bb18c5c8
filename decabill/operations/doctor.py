"""`decabill doctor`: the configuration and every dependency of the running configuration, checked one
by one, one line each — `OK`, `WARN` (works, but look at it), `FAIL` (with what to do) or `SKIP` (not
configured, and what that means) — so an operator knows at once what stops billing.

Checks: configuration; database reachable; database migrated; Redis (when configured, or required by
QUEUE_ROLE); SMTP handshake (and login when SMTP_USER is set); every payment processor's credentials (Stripe:
the key may read Checkout Sessions) and the Stripe webhook secret; every provisioning provider's token
(built-ins and plugins: the provider lists its server types); Cloudflare DNS; the Keycloak realm's keys
(keycloak mode); the invoice issuer (BILLING_ISSUER_*); the OTLP collector (when tracing is on).
Decabill asks VIES about VAT IDs only when a profile is saved and in the re-check job; VIES being down
leaves them `pending`, so the doctor does not probe it.

Exit code 0 when nothing FAILed, 1 otherwise. Nothing is written anywhere; secrets are never printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from decabill.config import ConfigurationError, Settings

CHECK_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Check:
    status: str  # OK | WARN | FAIL | SKIP
    name: str
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"{self.status:<5} {self.name:<24} {self.detail}"
        return f"{line}\n{'':<30}-> {self.fix}" if self.fix else line


def ok(name: str, detail: str) -> Check:
    return Check("OK", name, detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check("FAIL", name, detail, fix)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- database ------------------------------------------------------------------------------------------


def _database_name(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    from decabill.db import postgres_server

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite {url.database}"
    return f"PostgreSQL {url.database!r} at {postgres_server(url)}"


async def check_database(settings: Settings) -> list[Check]:
    from alembic.script import ScriptDirectory

    from decabill import db
    from decabill.migrations import alembic_config

    name = _database_name(settings)
    if settings.database_url.startswith("sqlite"):
        from pathlib import Path

        path = settings.database_url.split("///", 1)[-1]
        if path and path != ":memory:" and not Path(path).exists():
            return [fail("database", f"{name} does not exist",
                         "run `decabill migrate` (or start `decabill serve`, which migrates), or correct DATABASE_URL / "
                         "DECABILL_DATA_DIR"),
                    Check("SKIP", "database schema", "no database")]
    try:
        current = await db.schema_revision(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - any driver error means the same to the operator
        return [fail("database", f"{name} cannot be reached: {_reason(exc)}",
                     "start the database server, or correct DATABASE_URL / DB_HOST, DB_PORT, DB_USERNAME, "
                     "DB_PASSWORD, DB_DATABASE"),
                Check("SKIP", "database schema", "database not reachable")]
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    checks = [ok("database", f"{name} answers")]
    if current == head:
        checks.append(ok("database schema", f"migrated (revision {head})"))
    else:
        checks.append(fail("database schema", f"at revision {current or 'none (empty database)'}, this version needs "
                                              f"{head}", "run `decabill migrate` (`decabill serve` migrates at start)"))
    return checks


# --- queue ---------------------------------------------------------------------------------------------


async def check_redis(settings: Settings) -> Check:
    if not settings.redis_url:
        if settings.queue_role in ("worker", "scheduler"):
            return fail("redis", f"not configured, but QUEUE_ROLE={settings.queue_role} needs it",
                        "set REDIS_URL (or REDIS_HOST), or QUEUE_ROLE=all")
        return Check("SKIP", "redis", "not configured: jobs run inside the `decabill serve` process, rate limits "
                                      "and Socket.IO fan-out are per process")
    import redis.asyncio as redis
    from redis.connection import parse_url

    where = parse_url(settings.redis_url)
    place = f"{where.get('host', where.get('path', '?'))}:{where.get('port', 6379)}/{where.get('db', 0)}"
    client = redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        await client.ping()
        version = (await client.info("server")).get("redis_version", "?")
    except Exception as exc:  # noqa: BLE001
        return fail("redis", f"{place} cannot be reached: {_reason(exc)}",
                    "start Redis, or correct REDIS_URL / REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB")
    finally:
        await client.aclose()
    return ok("redis", f"{place} answers (Redis {version})")


# --- mail ----------------------------------------------------------------------------------------------


async def check_smtp(settings: Settings) -> Check:
    if not settings.email_enabled:
        return Check("SKIP", "smtp", "SMTP_HOST is empty: no mail is sent (confirmation codes, invoices); billing "
                                     "mails are recorded as skipped")
    import aiosmtplib

    place = f"{settings.smtp_host}:{settings.smtp_port}"
    client = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port, timeout=10,
                             start_tls=False if not settings.smtp_user else None)
    try:
        await client.connect()
        await client.noop()
        if settings.smtp_user:
            await client.login(settings.smtp_user, settings.smtp_password or "")
        await client.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        return fail("smtp", f"{place} refused the login of SMTP_USER: {_reason(exc)}",
                    "correct SMTP_USER / SMTP_PASSWORD")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return fail("smtp", f"{place} cannot be reached: {_reason(exc)}",
                    "start the mail server, or correct SMTP_HOST / SMTP_PORT; mails wait as pending until it works")
    return ok("smtp", f"{place} answers" + (" and accepted the login" if settings.smtp_user else ""))


# --- payments ------------------------------------------------------------------------------------------


async def check_payments(settings: Settings) -> list[Check]:
    from decabill.errors import DecabillError
    from decabill.payments.service import get_payment_processors

    registry = get_payment_processors()
    checks = []
    if registry.get(settings.billing_default_payment_processor) is None:
        checks.append(fail("payments", f"BILLING_DEFAULT_PAYMENT_PROCESSOR={settings.billing_default_payment_processor} "
                                       f"is not installed (installed: {', '.join(registry.ids())})",
                           "correct BILLING_DEFAULT_PAYMENT_PROCESSOR or install the plugin"))
    for processor_id in registry.ids():
        processor = registry.require(processor_id)
        name = f"payments {processor_id}"
        problem = processor.configuration_problem()
        if problem:
            checks.append(Check("SKIP", name, f"{problem} (customers cannot pay online through it)"))
            continue
        try:
            note = await processor.check_access()
        except DecabillError as exc:
            cause = f" ({_reason(exc.__cause__)})" if exc.__cause__ is not None else ""
            checks.append(fail(name, exc.message + cause, "check the processor's credentials (Stripe: "
                                                          "STRIPE_SECRET_KEY) and that its API can be reached"))
        except Exception as exc:  # noqa: BLE001 - a plugin's own errors
            checks.append(fail(name, _reason(exc), "check the processor's configuration"))
        else:
            checks.append(ok(name, note) if note else Check("SKIP", name, "this processor cannot check its credentials"))
        if processor_id == "stripe":
            checks.append(ok("payments stripe webhook", "STRIPE_WEBHOOK_SECRET is set") if settings.stripe_webhook_secret
                          else fail("payments stripe webhook", "STRIPE_WEBHOOK_SECRET is not set: payments are never "
                                                               "confirmed", "set the signing secret of the webhook "
                                                                            "endpoint <API>/webhooks/payments/stripe"))
    return checks


# --- providers and DNS -----------------------------------------------------------------------------------


async def check_providers(_settings: Settings) -> list[Check]:
    from decabill.providers import ProviderNotConfigured, ProviderRequestFailed, get_registry

    checks = []
    for provider in get_registry():
        name = f"provider {provider.id}"
        variable = getattr(provider, "token_variable", None)
        try:
            types = await provider.fetch_server_types()
        except ProviderNotConfigured as exc:
            checks.append(Check("SKIP", name, f"{exc.variable} is not set: its service types cannot be ordered"))
            continue
        except ProviderRequestFailed as exc:
            checks.append(fail(name, exc.message, f"check {variable} and that the API can be reached" if variable
                               else "check the provider plugin's configuration"))
            continue
        except Exception as exc:  # noqa: BLE001 - a plugin's own errors
            checks.append(fail(name, _reason(exc), "check the provider plugin's configuration"))
            continue
        checks.append(ok(name, f"token accepted ({len(types)} server types)"))
    return checks


async def check_dns(settings: Settings) -> Check:
    from decabill.subscriptions.service import dns

    if not dns.is_configured():
        return Check("SKIP", "dns cloudflare", "CLOUDFLARE_API_TOKEN / CLOUDFLARE_ZONE_ID not set: no A records are "
                                               "created for ordered servers")
    try:
        await dns.check_access()
    except dns.DnsError as exc:
        return fail("dns cloudflare", str(exc), "check CLOUDFLARE_API_TOKEN (DNS read/edit on the zone), "
                                                "CLOUDFLARE_ZONE_ID and CLOUDFLARE_API_URL")
    return ok("dns cloudflare", f"zone {settings.cloudflare_zone_id} readable")


# --- identity, billing, tracing --------------------------------------------------------------------------


async def check_keycloak(settings: Settings) -> Check:
    if settings.authentication_method != "keycloak":
        return Check("SKIP", "keycloak", f"AUTHENTICATION_METHOD={settings.authentication_method}")
    from decabill.identity.service import fetch_key_set

    try:
        keys = await fetch_key_set(settings.keycloak_jwks_url or "")
    except Exception as exc:  # noqa: BLE001
        return fail("keycloak", f"the realm's keys cannot be fetched: {_reason(exc)}",
                    "check KEYCLOAK_SERVER_URL and KEYCLOAK_REALM, and that Keycloak runs; no token can be verified")
    return ok("keycloak", f"realm {settings.keycloak_realm}: {len(keys.keys)} signing keys")


async def check_issuer(settings: Settings) -> Check:
    missing = settings.billing_issuer_missing
    if missing:
        return fail("invoice issuer", "incomplete: invoices cannot be issued, billing-day positions stay open",
                    f"set {', '.join(missing)}")
    return ok("invoice issuer", f"{settings.billing_issuer_name}, {settings.billing_issuer_country}")


async def check_tracing(settings: Settings) -> Check:
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return Check("SKIP", "tracing", "OTEL_EXPORTER_OTLP_ENDPOINT is not set: no traces are exported")
    import os

    import httpx

    url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or f"{endpoint.rstrip('/')}/v1/traces"
    try:  # an empty export request: a collector answers 200
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(url, content=b"", headers={"Content-Type": "application/x-protobuf"})
    except httpx.HTTPError as exc:
        return fail("tracing", f"{url} cannot be reached: {_reason(exc)}",
                    "start the OpenTelemetry collector or correct OTEL_EXPORTER_OTLP_ENDPOINT")
    if response.status_code >= 400:
        return fail("tracing", f"{url} answered {response.status_code}",
                    "check OTEL_EXPORTER_OTLP_ENDPOINT (the collector's OTLP/HTTP port, usually 4318)")
    return ok("tracing", f"{url} accepts OTLP/HTTP")


# --- running ---------------------------------------------------------------------------------------------


async def _guarded(name: str, check: Callable[[Settings], Awaitable[Check | list[Check]]],
                   settings: Settings) -> list[Check]:
    try:
        result = await asyncio.wait_for(check(settings), CHECK_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        return [fail(name, f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s", "check the network and the service")]
    except Exception as exc:  # noqa: BLE001 - a check that breaks must not hide the others
        return [fail(name, f"the check failed: {_reason(exc)}", "report this with the output of `decabill doctor`")]
    return result if isinstance(result, list) else [result]


CHECKS: list[tuple[str, Callable[[Settings], Awaitable[Check | list[Check]]]]] = [
    ("database", check_database), ("redis", check_redis), ("smtp", check_smtp), ("payments", check_payments),
    ("providers", check_providers), ("dns cloudflare", check_dns), ("keycloak", check_keycloak),
    ("invoice issuer", check_issuer), ("tracing", check_tracing),
]


async def run_checks(settings: Settings) -> list[Check]:
    checks = [ok("configuration", f"valid (AUTHENTICATION_METHOD={settings.authentication_method}, "
                                  f"NODE_ENV={settings.node_env}, QUEUE_ROLE={settings.queue_role})")]
    for name, check in CHECKS:  # one after the other: the output reads top-down like a checklist
        checks += await _guarded(name, check, settings)
    return checks


def main() -> int:
    from decabill.logging import configure_logging

    configure_logging("critical")  # the checks' own lines say what went wrong; no log lines in between
    try:
        from decabill.config import get_settings
        from decabill.payments import init_payment_processors
        from decabill.providers import init_registry

        settings = get_settings()
        init_registry(settings)
        init_payment_processors(settings)
    except ConfigurationError as exc:
        print(fail("configuration", str(exc), "correct the variable named above").render())
        return 1
    failed = False
    for check in asyncio.run(run_checks(settings)):
        print(check.render(), flush=True)
        failed = failed or check.status == "FAIL"
    print("\n" + ("some checks FAILED: see the lines marked FAIL" if failed else "no check failed"))
    return 1 if failed else 0
