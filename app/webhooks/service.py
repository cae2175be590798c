"""Webhook rules: tenancy, the outbound-address policy on save, a write-only secret."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Principal
from app.config import Settings
from app.errors import Conflict, NotFound, ValidationFailed
from app.kit import netpolicy
from app.kit.crypto import Keyring
from app.models import Account, Webhook, WebhookDelivery
from app.models.base import utcnow
from app.models.encrypted import WEBHOOK_SECRET
from app.webhooks import events, repository
from app.webhooks.schemas import AttemptRead, DeliveryRead, WebhookCreate, WebhookRead


def decrypt_secret(keyring: Keyring, hook: Webhook) -> str:
    return keyring.decrypt(hook.secret, WEBHOOK_SECRET.context(hook.id))


def generate_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _owner(principal: Principal, given: uuid.UUID | None) -> uuid.UUID:
    if principal.is_admin:
        if given is None:
            raise ValidationFailed(
                "account_id", "admin tokens must give account_id", hint="add the owner's account id"
            )
        return given
    if given is not None and given != principal.account_id:
        raise ValidationFailed(
            "account_id",
            "account tokens create webhooks in their own account only",
            hint="omit account_id",
        )
    assert principal.account_id is not None
    return principal.account_id


async def check_url(settings: Settings, url: str) -> None:
    """https anywhere the policy allows; plain http only towards allow-listed networks."""
    await netpolicy.check_url_on_save(netpolicy.Policy.from_settings(settings), "url", url)


async def create(
    session: AsyncSession,
    settings: Settings,
    keyring: Keyring,
    principal: Principal,
    body: WebhookCreate,
) -> tuple[Webhook, str | None]:
    """The new webhook, and its secret when this call generated it (shown once)."""
    account_id = _owner(principal, body.account_id)
    if await session.get(Account, account_id) is None:
        raise ValidationFailed("account_id", "no such account", hint="check the account id")
    await check_url(settings, body.url)
    if await repository.count_for_account(session, account_id) >= settings.webhook_max_per_account:
        raise Conflict(
            f"this account already has {settings.webhook_max_per_account} webhooks",
            hint="delete one you no longer use, or subscribe one webhook to several events",
        )
    generated = None if body.secret is not None else generate_secret()
    plain = body.secret.get_secret_value() if body.secret is not None else generated
    assert plain is not None
    hook = Webhook(
        id=uuid.uuid4(),
        account_id=account_id,
        url=body.url,
        events=list(body.events),
        active=True,
        description=body.description,
        created_at=utcnow(),
    )
    hook.secret = keyring.encrypt(plain, WEBHOOK_SECRET.context(hook.id))
    session.add(hook)
    await session.flush()
    return hook, generated


async def get_visible(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID
) -> Webhook:
    """The webhook, when this principal may see it; otherwise 404 exactly like a missing one."""
    hook = await repository.get(session, webhook_id)
    if hook is None or not principal.owns(hook.account_id):
        raise NotFound("Webhook not found", hint="check the webhook id")
    return hook


def list_query(principal: Principal, account_id: uuid.UUID | None = None) -> Select[tuple[Webhook]]:
    return repository.list_query(account_id if principal.is_admin else principal.account_id)


async def delete(session: AsyncSession, hook: Webhook) -> None:
    """Delete the webhook; its pending deliveries and their history go with it."""
    await session.delete(hook)
    await session.flush()


async def queue_test(session: AsyncSession, hook: Webhook) -> WebhookDelivery:
    delivery = events.queue(
        session,
        hook,
        events.TEST_EVENT,
        {"webhook_id": str(hook.id), "message": "a test event from podbackup"},
    )
    await session.flush()
    return delivery


def to_read(hook: Webhook) -> WebhookRead:
    return WebhookRead(
        id=hook.id,
        account_id=hook.account_id,
        url=hook.url,
        events=list(hook.events or []),
        active=hook.active,
        description=hook.description,
        secret_set=bool(hook.secret),
        created_at=hook.created_at,
    )


async def deliveries_read(
    session: AsyncSession, deliveries: list[WebhookDelivery]
) -> list[DeliveryRead]:
    attempts = await repository.attempts_of(session, [d.id for d in deliveries])
    return [delivery_read(d, attempts.get(d.id, [])) for d in deliveries]


def delivery_read(delivery: WebhookDelivery, attempts: list[Any]) -> DeliveryRead:
    return DeliveryRead(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event=delivery.event,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        payload=delivery.payload,
        attempt_log=[AttemptRead.model_validate(a) for a in attempts],
    )
