"""Outbound webhooks (decabill/webhooks): the endpoints a tenant registered, the events recorded in the
transaction of the change that caused them (the outbox), and one delivery per (event, endpoint).

A delivery row is both the queue entry and the log line: `next_attempt_at` says when a worker may claim it
(a claim pushes it into the future, so a worker that dies mid-request leaves it due again), and the last
attempt's status code, duration and response excerpt are kept on it with the attempt count.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Text
from sqlmodel import Field, SQLModel

from models.base import Timestamped, id_field, tenant_field, timestamp_field


class WebhookEndpoint(Timestamped, table=True):
    __tablename__ = "webhook_endpoints"

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    url: str = Field(max_length=2000)
    description: str | None = Field(default=None, max_length=500)
    event_types: Any = Field(default=None, sa_column=Column(JSON, nullable=False))  # list of event type names
    enabled: bool = Field(default=True)
    secret: str = Field(sa_type=Text)  # encrypted at rest (decabill.secrets)
    # After a rotation the replaced secret still signs, next to the new one, until then (receivers switch over).
    previous_secret: str | None = Field(default=None, sa_type=Text)  # encrypted at rest
    previous_secret_until: dt.datetime | None = timestamp_field()
    failing_since: dt.datetime | None = timestamp_field()  # first failed attempt since the last success
    disabled_reason: str | None = Field(default=None, max_length=500)


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_events"

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    type: str = Field(max_length=64)
    payload: Any = Field(default=None, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = timestamp_field(default_now=True, index=True)


class DeliveryStatus:
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(Timestamped, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    event_id: uuid.UUID = Field(sa_column=Column(ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False,
                                                 index=True))
    endpoint_id: uuid.UUID = Field(sa_column=Column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
                                                    nullable=False, index=True))
    event_type: str = Field(max_length=64)
    status: str = Field(max_length=16, default=DeliveryStatus.PENDING)
    attempts: int = Field(default=0)
    next_attempt_at: dt.datetime | None = timestamp_field()
    last_attempt_at: dt.datetime | None = timestamp_field()
    response_status: int | None = Field(default=None)
    duration_ms: int | None = Field(default=None)
    response_excerpt: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, max_length=500)
