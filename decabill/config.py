"""Typed configuration from environment variables (the reference's names and defaults).

`load_settings()` validates everything at start-up; `decabill.cli` turns a validation error into one
line naming the variable, so an operator never sees a traceback for a typo in the environment.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AuthMethod = Literal["api-key", "keycloak", "users"]
QueueRole = Literal["api", "scheduler", "worker", "all"]
AUTH_METHODS = ("api-key", "keycloak", "users")
#: the async driver of each supported database (`postgresql://` is completed to `postgresql+asyncpg://`)
DATABASE_DRIVERS = {"postgresql": "asyncpg", "postgres": "asyncpg", "sqlite": "aiosqlite"}


def _split_csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # --- HTTP / process -------------------------------------------------------------------
    node_env: str = Field("development", alias="NODE_ENV")
    host: str = Field("0.0.0.0", alias="HOST")
    port: int = Field(3200, alias="PORT", ge=1, le=65535)
    # HTTP processes of `decabill serve` (API role): 1 = just this one; 0 = one per CPU core (the image's default)
    web_concurrency: int = Field(1, alias="WEB_CONCURRENCY", ge=0, le=64)
    data_dir: Path = Field(Path("data"), alias="DECABILL_DATA_DIR")
    validate_responses: bool = Field(False, alias="DECABILL_VALIDATE_RESPONSES")
    api_docs_enabled: bool = Field(True, alias="API_DOCS_ENABLED")  # Swagger UI and the spec document
    log_level: str = Field("info", alias="LOG_LEVEL")

    # --- operating: metrics and tracing (decabill/observability) ------------------------------------
    metrics_port: int = Field(0, alias="METRICS_PORT", ge=0, le=65535)  # 0: no /metrics listener
    metrics_host: str = Field("0.0.0.0", alias="METRICS_HOST")
    otel_exporter_otlp_endpoint: str | None = Field(None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")

    # --- authentication ---------------------------------------------------------------------
    authentication_method_raw: str | None = Field(None, alias="AUTHENTICATION_METHOD")
    static_api_key: str | None = Field(None, alias="STATIC_API_KEY")
    static_api_key_tenant_id: str | None = Field(None, alias="STATIC_API_KEY_TENANT_ID")
    jwt_secret: str | None = Field(None, alias="JWT_SECRET")
    jwt_expiry_days: int = Field(7, alias="JWT_EXPIRY_DAYS", ge=1)
    password_hash_rounds: int = Field(12, alias="PASSWORD_HASH_ROUNDS", ge=4, le=16)
    disable_signup_raw: str = Field("false", alias="DISABLE_SIGNUP")
    keycloak_server_url: str | None = Field(None, alias="KEYCLOAK_SERVER_URL")
    keycloak_auth_server_url: str | None = Field(None, alias="KEYCLOAK_AUTH_SERVER_URL")
    keycloak_realm: str | None = Field(None, alias="KEYCLOAK_REALM")
    keycloak_client_id: str | None = Field(None, alias="KEYCLOAK_CLIENT_ID")
    keycloak_client_secret: str | None = Field(None, alias="KEYCLOAK_CLIENT_SECRET")
    keycloak_token_validation: str = Field("offline", alias="KEYCLOAK_TOKEN_VALIDATION")
    keycloak_jwks_cache_seconds: int = Field(300, alias="KEYCLOAK_JWKS_CACHE_SECONDS", ge=0)

    # --- tenancy -----------------------------------------------------------------------------
    tenants_raw: str | None = Field(None, alias="TENANTS")

    # --- web hardening -----------------------------------------------------------------------
    cors_origin_raw: str | None = Field(None, alias="CORS_ORIGIN")
    rate_limit_enabled_raw: str | None = Field(None, alias="RATE_LIMIT_ENABLED")
    rate_limit_ttl: int = Field(60, alias="RATE_LIMIT_TTL", ge=1)
    rate_limit_limit: int = Field(100, alias="RATE_LIMIT_LIMIT", ge=1)
    # Stricter budget for credential endpoints (login, register, password reset, confirm).
    rate_limit_auth_limit: int = Field(10, alias="RATE_LIMIT_AUTH_LIMIT", ge=1)
    # Request bodies are refused with 413 beyond this size, counted while they are read (before parsing).
    max_request_body_bytes: int = Field(1024 * 1024, alias="MAX_REQUEST_BODY_BYTES", ge=1024)
    # A usage record's free-form payload is stored as sent: its own, smaller bound (JSON text, in bytes).
    usage_payload_max_bytes: int = Field(64 * 1024, alias="USAGE_PAYLOAD_MAX_BYTES", ge=256)
    # Addresses (IPs or CIDR networks) of reverse proxies whose X-Forwarded-For / -Proto are believed.
    trusted_proxies_raw: str | None = Field(None, alias="TRUSTED_PROXIES")
    # Per-account sign-in throttling: after this many failures each further attempt must wait, the wait
    # doubling from the base up to the maximum; failures are forgotten after the reset period without one.
    login_throttle_free_attempts: int = Field(5, alias="LOGIN_THROTTLE_FREE_ATTEMPTS", ge=1)
    login_throttle_base_delay_seconds: float = Field(1, alias="LOGIN_THROTTLE_BASE_DELAY_SECONDS", gt=0)
    login_throttle_max_delay_seconds: float = Field(900, alias="LOGIN_THROTTLE_MAX_DELAY_SECONDS", gt=0)
    login_throttle_reset_seconds: int = Field(3600, alias="LOGIN_THROTTLE_RESET_SECONDS", ge=1)

    # --- secrets at rest ---------------------------------------------------------------------
    encryption_key: str | None = Field(None, alias="ENCRYPTION_KEY")

    # --- database ----------------------------------------------------------------------------
    database_url_raw: str | None = Field(None, alias="DATABASE_URL")
    db_host: str | None = Field(None, alias="DB_HOST")
    db_port: int = Field(5432, alias="DB_PORT", ge=1, le=65535)
    db_pool_size: int = Field(10, alias="DB_POOL_SIZE", ge=1, le=1000)  # PostgreSQL connections kept per process
    # Connections opened beyond the pool at peaks and closed on return: none by default (a request waits for a
    # pooled connection instead — see `database_pool`)
    db_pool_max_overflow: int = Field(0, alias="DB_POOL_MAX_OVERFLOW", ge=0, le=1000)
    # Seconds a unit of work waits for a pooled connection before giving up: the request is answered 503 with
    # Retry-After instead of hanging (waiters are served in arrival order, `decabill.db.FairPool`)
    db_pool_timeout: float = Field(10.0, alias="DB_POOL_TIMEOUT", gt=0, le=3600)
    db_username: str = Field("postgres", alias="DB_USERNAME")
    db_password: str = Field("postgres", alias="DB_PASSWORD")
    db_database: str = Field("billing", alias="DB_DATABASE")

    # --- queue / redis -----------------------------------------------------------------------
    redis_url_raw: str | None = Field(None, alias="REDIS_URL")
    redis_host: str | None = Field(None, alias="REDIS_HOST")
    redis_port: int = Field(6379, alias="REDIS_PORT")
    redis_password: str | None = Field(None, alias="REDIS_PASSWORD")
    redis_db: int = Field(0, alias="REDIS_DB", ge=0)
    redis_key_prefix: str = Field("decabill-billing", alias="REDIS_KEY_PREFIX")
    queue_role: QueueRole = Field("all", alias="QUEUE_ROLE")
    # A job message a dead worker left unacknowledged this long is taken over by another worker; live workers
    # renew theirs every third of it, so a long job is not taken from a worker that is still running it.
    queue_claim_idle_ms: int = Field(45000, alias="QUEUE_CLAIM_IDLE_MS", ge=1000)

    # --- mail delivery (decabill/email.py): the lease of a mail being sent, renewed while sending ------------
    mail_claim_lease_seconds: int = Field(60, alias="MAIL_CLAIM_LEASE_SECONDS", ge=3)
    mail_retry_interval: int = Field(60000, alias="MAIL_RETRY_INTERVAL", ge=1000)

    # --- email -------------------------------------------------------------------------------
    smtp_host: str | None = Field("mailhog", alias="SMTP_HOST")
    smtp_port: int = Field(1025, alias="SMTP_PORT", ge=1, le=65535)
    smtp_user: str | None = Field(None, alias="SMTP_USER")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD")
    email_from: str = Field("noreply@localhost", alias="EMAIL_FROM")

    # --- realtime ----------------------------------------------------------------------------
    websocket_port: int = Field(8082, alias="WEBSOCKET_PORT", ge=0, le=65535)
    websocket_namespace: str = Field("billing", alias="WEBSOCKET_NAMESPACE")
    websocket_cors_origin: str = Field("*", alias="WEBSOCKET_CORS_ORIGIN")
    status_poll_interval: int = Field(15000, alias="STATUS_POLL_INTERVAL")
    # The gateway's share of the database pool and of the provider APIs: at most this many loads / provider
    # reads at once per process, whatever the number of sockets (keep it well below DB_POOL_SIZE).
    dashboard_db_concurrency: int = Field(4, alias="DASHBOARD_DB_CONCURRENCY", ge=1, le=64)
    dashboard_provider_concurrency: int = Field(8, alias="DASHBOARD_PROVIDER_CONCURRENCY", ge=1, le=256)

    # --- provisioning providers (decabill/providers) ------------------------------------------------
    hetzner_api_token: str | None = Field(None, alias="HETZNER_API_TOKEN")
    hetzner_api_url: str = Field("https://api.hetzner.cloud/v1", alias="HETZNER_API_URL")
    digitalocean_api_token: str | None = Field(None, alias="DIGITALOCEAN_API_TOKEN")
    digitalocean_api_url: str = Field("https://api.digitalocean.com", alias="DIGITALOCEAN_API_URL")
    dynamic_providers_fail_fast_raw: str = Field("false", alias="DYNAMIC_PROVIDERS_FAIL_FAST")
    provider_cache_seconds: float = Field(60, alias="PROVIDER_CACHE_SECONDS", ge=0)
    # Cache-Control max-age of the public catalogue's answers (0: revalidate with the ETag every time).
    public_cache_max_age: int = Field(0, alias="PUBLIC_CACHE_MAX_AGE", ge=0, le=86400)
    # Characters of JSON per process of the admin invoice pages kept with their list version (PostgreSQL; 0: none).
    admin_page_cache_bytes: int = Field(16 * 1024 * 1024, alias="ADMIN_PAGE_CACHE_BYTES", ge=0, le=2**34)
    provider_timeout_seconds: float = Field(30, alias="PROVIDER_TIMEOUT_SECONDS", gt=0)
    provider_max_retries: int = Field(2, alias="PROVIDER_MAX_RETRIES", ge=0, le=10)

    # --- subscriptions: DNS, provisioning, background jobs (decabill/subscriptions, decabill/jobs) ---
    cloudflare_api_token: str | None = Field(None, alias="CLOUDFLARE_API_TOKEN")
    cloudflare_zone_id: str | None = Field(None, alias="CLOUDFLARE_ZONE_ID")
    cloudflare_api_url: str = Field("https://api.cloudflare.com/client/v4", alias="CLOUDFLARE_API_URL")
    dns_base_domain: str = Field("decabill.localhost", alias="DNS_BASE_DOMAIN")  # D23
    lets_encrypt_email: str | None = Field(None, alias="LETS_ENCRYPT_EMAIL")
    provisioning_ip_poll_interval_ms: int = Field(2000, alias="PROVISIONING_IP_POLL_INTERVAL_MS")
    provisioning_ip_poll_attempts: int = Field(30, alias="PROVISIONING_IP_POLL_ATTEMPTS")
    subscription_update_ssh_port: int = Field(22, alias="SUBSCRIPTION_UPDATE_SSH_PORT")
    subscription_update_ssh_timeout_ms: int = Field(15000, alias="SUBSCRIPTION_UPDATE_SSH_TIMEOUT_MS")
    backorder_retry_interval_ms: int = Field(60000, alias="BACKORDER_RETRY_INTERVAL_MS")
    backorder_retry_batch_size: int = Field(100, alias="BACKORDER_RETRY_BATCH_SIZE")
    order_recovery_interval_ms: int = Field(60000, alias="ORDER_RECOVERY_INTERVAL_MS")
    order_recovery_batch_size: int = Field(100, alias="ORDER_RECOVERY_BATCH_SIZE")
    order_recovery_grace_ms: int = Field(600000, alias="ORDER_RECOVERY_GRACE_MS")
    expiration_scheduler_interval: int = Field(60000, alias="EXPIRATION_SCHEDULER_INTERVAL")
    expiration_scheduler_batch_size: int = Field(100, alias="EXPIRATION_SCHEDULER_BATCH_SIZE")
    subscription_update_scheduler_interval: int = Field(86400000, alias="SUBSCRIPTION_UPDATE_SCHEDULER_INTERVAL")
    billing_scheduler_interval: int = Field(60000, alias="BILLING_SCHEDULER_INTERVAL")
    billing_scheduler_batch_size: int = Field(100, alias="BILLING_SCHEDULER_BATCH_SIZE")
    queue_worker_concurrency: int = Field(5, alias="QUEUE_WORKER_CONCURRENCY")

    # --- idempotent writes and outbound webhooks (decabill/idempotency, decabill/webhooks) -------------
    idempotency_key_ttl_hours: int = Field(24, alias="IDEMPOTENCY_KEY_TTL_HOURS", ge=1)
    idempotency_stale_seconds: int = Field(600, alias="IDEMPOTENCY_STALE_SECONDS", ge=1)
    idempotency_cleanup_interval_ms: int = Field(3600000, alias="IDEMPOTENCY_CLEANUP_INTERVAL_MS", ge=1000)
    webhook_allow_private_targets: bool = Field(False, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")
    webhook_timeout_seconds: float = Field(10, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=60)
    webhook_retry_schedule_raw: str = Field("60,300,900,1800,7200,21600,43200,86400,86400",
                                            alias="WEBHOOK_RETRY_SCHEDULE")
    webhook_disable_after_days: float = Field(5, alias="WEBHOOK_DISABLE_AFTER_DAYS", gt=0)
    webhook_delivery_interval_ms: int = Field(30000, alias="WEBHOOK_DELIVERY_INTERVAL_MS", ge=1000)
    webhook_delivery_batch_size: int = Field(100, alias="WEBHOOK_DELIVERY_BATCH_SIZE", ge=1)
    webhook_alert_email: str | None = Field(None, alias="WEBHOOK_ALERT_EMAIL")
    webhook_secret_overlap_hours: float = Field(24, alias="WEBHOOK_SECRET_OVERLAP_HOURS", ge=0, le=24 * 30)

    # --- billing -----------------------------------------------------------------------------
    billing_currency: str = Field("EUR", alias="BILLING_CURRENCY", min_length=3, max_length=3)
    billing_tax_rate_standard: Decimal = Field(Decimal("19"), alias="BILLING_TAX_RATE_STANDARD", ge=0, le=100)
    billing_tax_rate_reduced: Decimal = Field(Decimal("7"), alias="BILLING_TAX_RATE_REDUCED", ge=0, le=100)

    # --- EU VAT (decabill/taxes) -------------------------------------------------------------------
    billing_oss_enabled: bool = Field(False, alias="BILLING_OSS_ENABLED")
    billing_tax_rates_file: Path | None = Field(None, alias="BILLING_TAX_RATES_FILE")
    vies_api_url: str = Field("https://ec.europa.eu/taxation_customs/vies/rest-api", alias="VIES_API_URL")
    vies_timeout_seconds: float = Field(10, alias="VIES_TIMEOUT_SECONDS", gt=0)
    vies_recheck_interval: int = Field(600000, alias="VIES_RECHECK_INTERVAL")

    # --- invoicing (decabill/invoicing, decabill/usage) -------------------------------------------
    billing_issuer_name: str | None = Field(None, alias="BILLING_ISSUER_NAME")
    billing_issuer_vat_id: str | None = Field(None, alias="BILLING_ISSUER_VAT_ID")
    billing_issuer_address_line1: str | None = Field(None, alias="BILLING_ISSUER_ADDRESS_LINE1")
    billing_issuer_postal_code: str | None = Field(None, alias="BILLING_ISSUER_POSTAL_CODE")
    billing_issuer_city: str | None = Field(None, alias="BILLING_ISSUER_CITY")
    billing_issuer_country: str = Field("DE", alias="BILLING_ISSUER_COUNTRY")
    billing_issuer_email: str | None = Field(None, alias="BILLING_ISSUER_EMAIL")
    billing_issuer_bank: str | None = Field(None, alias="BILLING_ISSUER_BANK")
    billing_issuer_iban: str | None = Field(None, alias="BILLING_ISSUER_IBAN")
    billing_issuer_bic: str | None = Field(None, alias="BILLING_ISSUER_BIC")
    billing_invoice_pdf_storage_path_raw: str | None = Field(None, alias="BILLING_INVOICE_PDF_STORAGE_PATH")
    billing_skip_file_cache_raw: str = Field("false", alias="BILLING_SKIP_FILE_CACHE")
    billing_default_payment_processor: str = Field("stripe", alias="BILLING_DEFAULT_PAYMENT_PROCESSOR")
    open_position_invoice_scheduler_interval: int = Field(86400000, alias="OPEN_POSITION_INVOICE_SCHEDULER_INTERVAL")
    open_position_invoice_batch_size: int = Field(200, alias="OPEN_POSITION_INVOICE_BATCH_SIZE")
    invoice_overdue_scheduler_interval: int = Field(86400000, alias="INVOICE_OVERDUE_SCHEDULER_INTERVAL")
    invoice_overdue_scheduler_batch_size: int = Field(100, alias="INVOICE_OVERDUE_SCHEDULER_BATCH_SIZE")
    reminder_scheduler_interval: int = Field(3600000, alias="REMINDER_SCHEDULER_INTERVAL")
    reminder_scheduler_batch_size: int = Field(100, alias="REMINDER_SCHEDULER_BATCH_SIZE")
    reminder_days: int = Field(3, alias="REMINDER_DAYS")
    dunning_scheduler_interval: int = Field(3600000, alias="DUNNING_SCHEDULER_INTERVAL")

    # --- payments (decabill/payments) -----------------------------------------------------------
    stripe_secret_key: str | None = Field(None, alias="STRIPE_SECRET_KEY")
    stripe_webhook_secret: str | None = Field(None, alias="STRIPE_WEBHOOK_SECRET")
    # A webhook signature's timestamp may differ from our clock by at most this much, in either direction.
    stripe_webhook_tolerance_seconds: int = Field(300, alias="STRIPE_WEBHOOK_TOLERANCE_SECONDS", ge=1)
    stripe_api_base: str | None = Field(None, alias="STRIPE_API_BASE")
    stripe_max_network_retries: int = Field(2, alias="STRIPE_MAX_NETWORK_RETRIES", ge=0, le=10)
    stripe_timeout_seconds: float = Field(30, alias="STRIPE_TIMEOUT_SECONDS", gt=0)
    stripe_checkout_success_url: str | None = Field(None, alias="STRIPE_CHECKOUT_SUCCESS_URL")
    stripe_checkout_cancel_url: str | None = Field(None, alias="STRIPE_CHECKOUT_CANCEL_URL")
    billing_frontend_url: str | None = Field(None, alias="BILLING_FRONTEND_URL")
    tenant_frontend_urls_raw: str | None = Field(None, alias="TENANT_FRONTEND_URLS")

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _blank_endpoint_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator(
        "stripe_secret_key", "stripe_webhook_secret", "stripe_api_base", "stripe_checkout_success_url",
        "stripe_checkout_cancel_url", "billing_frontend_url", "tenant_frontend_urls_raw",
    )
    @classmethod
    def _blank_payment_setting_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator(
        "billing_issuer_name", "billing_issuer_vat_id", "billing_issuer_address_line1", "billing_issuer_postal_code",
        "billing_issuer_city", "billing_issuer_email", "billing_issuer_bank", "billing_issuer_iban", "billing_issuer_bic",
        "billing_invoice_pdf_storage_path_raw",
    )
    @classmethod
    def _blank_issuer_field_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("billing_issuer_country")
    @classmethod
    def _issuer_country(cls, value: str) -> str:
        return value.strip().upper() or "DE"

    @field_validator("billing_default_payment_processor")
    @classmethod
    def _payment_processor(cls, value: str) -> str:
        return value.strip() or "stripe"

    @field_validator(
        "open_position_invoice_scheduler_interval", "open_position_invoice_batch_size",
        "invoice_overdue_scheduler_interval", "invoice_overdue_scheduler_batch_size", "reminder_scheduler_interval", "reminder_scheduler_batch_size",
        "reminder_days", "dunning_scheduler_interval",
        mode="before",
    )
    @classmethod
    def _invoicing_positive_int_or_default(cls, value: object, info) -> object:
        """Job intervals (ms), batch sizes and REMINDER_DAYS: an integer > 0, anything else the default."""
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            number = 0
        return number if number > 0 else cls.model_fields[info.field_name].default

    @field_validator("hetzner_api_token", "digitalocean_api_token")
    @classmethod
    def _blank_token_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("hetzner_api_url", "digitalocean_api_url")
    @classmethod
    def _strip_url(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @field_validator("cloudflare_api_token", "cloudflare_zone_id", "lets_encrypt_email")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("cloudflare_api_url")
    @classmethod
    def _strip_cloudflare_url(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @field_validator("dns_base_domain")
    @classmethod
    def _normalise_base_domain(cls, value: str) -> str:
        return value.strip().strip(".").lower() or "decabill.localhost"

    @field_validator(
        "provisioning_ip_poll_interval_ms", "provisioning_ip_poll_attempts", "subscription_update_ssh_port",
        "subscription_update_ssh_timeout_ms", "backorder_retry_interval_ms", "backorder_retry_batch_size",
        "expiration_scheduler_interval", "expiration_scheduler_batch_size", "subscription_update_scheduler_interval",
        "billing_scheduler_interval", "billing_scheduler_batch_size",
        "order_recovery_interval_ms", "order_recovery_batch_size", "order_recovery_grace_ms",
        "queue_worker_concurrency",
        mode="before",
    )
    @classmethod
    def _positive_int_or_default(cls, value: object, info) -> object:
        """The reference's rule for job intervals and batch sizes: an integer > 0, anything else means the
        default (a typo slows nothing down and stops nothing)."""
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            number = 0
        if number > 0:
            return number
        return cls.model_fields[info.field_name].default

    @field_validator("status_poll_interval", mode="before")
    @classmethod
    def _poll_interval_or_default(cls, value: object) -> int:
        """Reference rule: a STATUS_POLL_INTERVAL that is not a number means the default (15 s)."""
        try:
            return int(str(value).strip())
        except (TypeError, ValueError):
            return 15000

    @field_validator("websocket_namespace")
    @classmethod
    def _strip_namespace(cls, value: str) -> str:
        return value.strip().strip("/") or "billing"

    @model_validator(mode="after")
    def _check_consistency(self) -> "Settings":
        raw_method = (self.authentication_method_raw or "").strip()
        if raw_method and raw_method.lower() not in AUTH_METHODS:
            # The reference silently falls back to keycloak/api-key; an operator's typo must be named instead.
            raise ValueError(f"AUTHENTICATION_METHOD={raw_method!r} is not one of {', '.join(AUTH_METHODS)}")
        backend = self.database_url.split("://", 1)[0].split("+", 1)[0].lower()
        if backend not in DATABASE_DRIVERS:
            raise ValueError(f"{self.database_variables}: unsupported database {backend!r} (use "
                             "postgresql+asyncpg://user:password@host:5432/name or sqlite+aiosqlite:///path/file.sqlite3)")
        if self.authentication_method in ("users", "keycloak") and not (self.jwt_secret or "").strip():
            raise ValueError(
                f"JWT_SECRET must be set when AUTHENTICATION_METHOD={self.authentication_method}"
            )
        if self.encryption_key is not None:
            try:
                raw = base64.b64decode(self.encryption_key, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError("ENCRYPTION_KEY must decode to 32 bytes (AES-256).")
        elif self.is_production:
            raise ValueError("ENCRYPTION_KEY must be set in production (base64 of 32 random bytes).")
        for proxy in (p for p in self.trusted_proxies if p != "*"):
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"TRUSTED_PROXIES: {proxy!r} is not an IP address or network") from None
        if self.authentication_method == "keycloak" and not (self.keycloak_server_url and self.keycloak_realm):
            raise ValueError("KEYCLOAK_SERVER_URL and KEYCLOAK_REALM must be set when AUTHENTICATION_METHOD=keycloak")
        return self

    # --- derived values ------------------------------------------------------------------------
    @property
    def is_production(self) -> bool:
        return self.node_env.strip().lower() == "production"

    @property
    def authentication_method(self) -> AuthMethod:
        raw = (self.authentication_method_raw or "").strip().lower()
        if raw in AUTH_METHODS:
            return raw  # type: ignore[return-value]
        return "api-key" if (self.static_api_key or "") != "" else "keycloak"

    @property
    def signup_disabled(self) -> bool:
        return self.disable_signup_raw == "true"

    @property
    def dynamic_providers_fail_fast(self) -> bool:
        return self.dynamic_providers_fail_fast_raw.strip().lower() == "true"

    @property
    def webhook_retry_schedule(self) -> list[int]:
        """Seconds to wait after each failed attempt; after the last one the delivery is marked failed."""
        return [max(0, int(part)) for part in _split_csv(self.webhook_retry_schedule_raw)]

    @property
    def database_pool(self) -> dict[str, float]:
        """The connection pool's size, as `decabill.db.init_engine` takes it: DB_POOL_SIZE for the requests, plus
        one connection per job a process of the `worker`/`all` role runs at once (QUEUE_WORKER_CONCURRENCY) —
        a billing-day batch holds its connection for seconds and must not take the requests' share — and no
        overflow unless DB_POOL_MAX_OVERFLOW says so. An overflow connection is opened and closed per checkout
        (a new backend, every statement prepared again): under load that cost more than the queries, and more
        backends than cores only contend (docs/performance.md, issue #20, fourth round)."""
        jobs = self.queue_worker_concurrency if self.queue_role in ("worker", "all") else 0
        return {"pool_size": self.db_pool_size + max(jobs, 0), "max_overflow": self.db_pool_max_overflow,
                "pool_timeout": self.db_pool_timeout}

    @property
    def tenants(self) -> list[str]:
        extra = [t for t in _split_csv(self.tenants_raw) if t != "default"]
        return ["default", *dict.fromkeys(extra)]

    @property
    def cors_origins(self) -> list[str]:
        if self.cors_origin_raw is None:
            return [] if self.is_production else ["*"]
        return _split_csv(self.cors_origin_raw)

    @property
    def origin_allowlist_enforced(self) -> bool:
        return self.is_production or bool(_split_csv(self.cors_origin_raw))

    @property
    def trusted_proxies(self) -> list[str]:
        return _split_csv(self.trusted_proxies_raw)

    @property
    def rate_limit_enabled(self) -> bool:
        raw = self.rate_limit_enabled_raw
        return raw != "false" and (self.is_production or raw == "true")

    @property
    def keycloak_issuer(self) -> str | None:
        base = self.keycloak_auth_server_url or self.keycloak_server_url
        if not (base and self.keycloak_realm):
            return None
        return f"{base.rstrip('/')}/realms/{self.keycloak_realm}"

    @property
    def keycloak_jwks_url(self) -> str | None:
        if not (self.keycloak_server_url and self.keycloak_realm):
            return None
        return f"{self.keycloak_server_url.rstrip('/')}/realms/{self.keycloak_realm}/protocol/openid-connect/certs"

    @property
    def database_variables(self) -> str:
        """The variables the database URL comes from (named in start-up errors)."""
        if self.database_url_raw:
            return "DATABASE_URL"
        if self.db_host:
            return "DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD/DB_DATABASE"
        return "DECABILL_DATA_DIR"

    @property
    def database_is_embedded_default(self) -> bool:
        """The SQLite file in DECABILL_DATA_DIR, whose folder start-up creates (any other path must exist)."""
        return not self.database_url_raw and not self.db_host

    @property
    def database_url(self) -> str:
        if self.database_url_raw:
            scheme, sep, rest = self.database_url_raw.strip().partition("://")
            backend = scheme.lower()
            if sep and backend in DATABASE_DRIVERS and "+" not in backend:
                return f"{'postgresql' if backend == 'postgres' else backend}+{DATABASE_DRIVERS[backend]}://{rest}"
            return self.database_url_raw.strip()
        if self.db_host:
            credentials = f"{quote(self.db_username, safe='')}:{quote(self.db_password, safe='')}"
            if self.db_host.startswith("/"):  # the folder of PostgreSQL's Unix socket: no TCP on the same machine
                return (f"postgresql+asyncpg://{credentials}@/{self.db_database}"
                        f"?host={quote(self.db_host)}&port={self.db_port}")
            return f"postgresql+asyncpg://{credentials}@{self.db_host}:{self.db_port}/{self.db_database}"
        return f"sqlite+aiosqlite:///{(self.data_dir / 'decabill.sqlite3').resolve()}"

    @property
    def redis_url(self) -> str | None:
        if self.redis_url_raw:
            return self.redis_url_raw
        if self.redis_host:
            auth = f":{self.redis_password}@" if self.redis_password else ""
            return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"
        return None

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def billing_invoice_pdf_storage_path(self) -> Path:
        if self.billing_invoice_pdf_storage_path_raw:
            return Path(self.billing_invoice_pdf_storage_path_raw)
        return self.data_dir / "invoices"

    @property
    def billing_skip_file_cache(self) -> bool:
        return self.billing_skip_file_cache_raw.strip().lower() == "true"

    @property
    def tenant_frontend_urls(self) -> dict[str, str]:
        """TENANT_FRONTEND_URLS (`tenant=url,tenant2=url2`): malformed segments skipped, trailing slashes
        stripped (behavior.md part B §6.2)."""
        urls: dict[str, str] = {}
        for segment in _split_csv(self.tenant_frontend_urls_raw):
            tenant, sep, url = segment.partition("=")
            tenant, url = tenant.strip(), url.strip().rstrip("/")
            if sep and tenant and url:
                urls[tenant] = url
        return urls

    def frontend_base(self, tenant: str) -> str:
        """The tenant's billing console (where customers pay): its `TENANT_FRONTEND_URLS` entry →
        `BILLING_FRONTEND_URL` → the origin of an absolute `STRIPE_CHECKOUT_SUCCESS_URL` → `http://localhost:4500`."""
        from urllib.parse import urlsplit

        tenant_url = self.tenant_frontend_urls.get(tenant)
        if tenant_url:
            return tenant_url
        if self.billing_frontend_url:
            return self.billing_frontend_url.rstrip("/")
        legacy = urlsplit(self.stripe_checkout_success_url or "")
        if legacy.scheme in ("http", "https") and legacy.netloc:
            return f"{legacy.scheme}://{legacy.netloc}"
        return "http://localhost:4500"

    @property
    def billing_issuer_missing(self) -> list[str]:
        """The BILLING_ISSUER_* variables an invoice cannot be issued without (empty when complete)."""
        required = {
            "BILLING_ISSUER_NAME": self.billing_issuer_name, "BILLING_ISSUER_VAT_ID": self.billing_issuer_vat_id,
            "BILLING_ISSUER_ADDRESS_LINE1": self.billing_issuer_address_line1,
            "BILLING_ISSUER_POSTAL_CODE": self.billing_issuer_postal_code, "BILLING_ISSUER_CITY": self.billing_issuer_city,
        }
        return [name for name, value in required.items() if not value]


class ConfigurationError(Exception):
    """Raised with a one-line, operator-facing message naming the offending variable."""


def describe_validation_error(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first.get("loc", ())) or "configuration"
        message = first.get("msg", "invalid value").removeprefix("Value error, ")
        if name == "configuration" or not first.get("loc"):
            return f"Invalid configuration: {message}"
        return f"Invalid environment variable {name}: {message}"
    return f"Invalid configuration: {exc}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]
    except Exception as exc:  # pydantic.ValidationError
        raise ConfigurationError(describe_validation_error(exc)) from exc


def reset_settings_cache() -> None:
    get_settings.cache_clear()
