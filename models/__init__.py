"""SQLModel tables, one module per domain. Importing this package registers every table on
`SQLModel.metadata` (Alembic's autogenerate and the test schema use it)."""

from models.identity import User  # noqa: F401
from models.catalog import AvailabilitySnapshot, ServicePlan, ServiceType  # noqa: F401
from models.customers import CustomerProfile  # noqa: F401
from models.jobs import JobLease, JobUnitRun, NumberSequence, PeriodicJobRun  # noqa: F401
from models.subscriptions import (  # noqa: F401
    Backorder,
    CustomerSuspension,
    OpenPosition,
    ReservedHostname,
    Subscription,
    SubscriptionItem,
    SuspensionPeriod,
)
from models.invoicing import (  # noqa: F401
    Invoice,
    InvoiceAuditLog,
    InvoiceCount,
    InvoiceLine,
    InvoiceUserCount,
    MailDelivery,
    UsageRecord,
)
from models.payments import PaymentAttempt, PaymentSettlement, PaymentWebhookEvent  # noqa: F401
from models.idempotency import IdempotencyKey  # noqa: F401
from models.webhooks import WebhookDelivery, WebhookEndpoint, WebhookEvent  # noqa: F401
from models.dunning import DunningPause, DunningPolicy, DunningStep  # noqa: F401
