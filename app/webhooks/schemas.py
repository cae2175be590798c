from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from app.kit.validators import Body, HttpUrl, Printable
from app.webhooks.events import EVENTS

EventName = Annotated[str, Field(json_schema_extra={"enum": list(EVENTS)})]
DeliveryStatus = Literal["pending", "delivered", "failed"]

_CREATE_EXAMPLE: dict[str, Any] = {
    "url": "https://hooks.example.com/podbackup",
    "events": ["job.failed", "backup.stale", "check.failed"],
    "description": "alerts to the ops channel",
}


class WebhookCreate(Body):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [_CREATE_EXAMPLE]}
    )

    url: HttpUrl = Field(
        max_length=2000,
        description=(
            "Where events are POSTed. https; plain http only for hosts inside "
            "PODBACKUP_ALLOW_NETWORKS (development). Redirects are never followed."
        ),
    )
    secret: SecretStr | None = Field(
        None,
        min_length=16,
        max_length=200,
        description=(
            "HMAC-SHA256 signing key (write-only). Omitted: one is generated and shown once "
            "in the create response."
        ),
    )
    events: list[EventName] = Field(
        default_factory=list, max_length=len(EVENTS), description="Subscribed events; empty: all."
    )
    description: Printable = Field("", max_length=200)
    account_id: uuid.UUID | None = Field(
        None, description="Required for admin tokens; account tokens create in their account."
    )

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; known: {', '.join(EVENTS)}")
        return list(dict.fromkeys(value))  # drop repeats, keep order


class WebhookRead(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    url: str
    events: list[str] = Field(description="Subscribed events; empty: all.")
    active: bool
    description: str
    secret_set: bool = Field(description="Always true: the secret is write-only.")
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str | None = Field(
        description=(
            "The generated signing secret, shown only in this response (null when you gave "
            "one). Verify `X-Podbackup-Signature: sha256=<hex>` as HMAC-SHA256 over "
            "`<X-Podbackup-Timestamp>.<raw body>`."
        )
    )


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    error: str | None
    duration_ms: int


class DeliveryRead(BaseModel):
    id: uuid.UUID = Field(description="The event id; the same on every retry.")
    webhook_id: uuid.UUID
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The exact JSON body sent on every attempt.")
    attempt_log: list[AttemptRead] = Field(description="Every attempt, oldest first.")
