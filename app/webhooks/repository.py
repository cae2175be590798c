"""Every SQL query of the webhooks domain."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Webhook, WebhookAttempt, WebhookDelivery


async def get(session: AsyncSession, webhook_id: uuid.UUID) -> Webhook | None:
    return await session.get(Webhook, webhook_id)


async def count_for_account(session: AsyncSession, account_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.account_id == account_id)
    )
    return int(total or 0)


async def active_for_account(session: AsyncSession, account_id: uuid.UUID) -> Sequence[Webhook]:
    rows = await session.scalars(
        select(Webhook).where(Webhook.account_id == account_id, Webhook.active.is_(True))
    )
    return rows.all()


def list_query(account_id: uuid.UUID | None) -> Select[tuple[Webhook]]:
    stmt = select(Webhook).order_by(Webhook.created_at, Webhook.id)
    if account_id is not None:
        stmt = stmt.where(Webhook.account_id == account_id)
    return stmt


def deliveries_query(
    webhook_id: uuid.UUID, status: str | None = None
) -> Select[tuple[WebhookDelivery]]:
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
    )
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    return stmt


async def attempts_of(
    session: AsyncSession, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    """The attempts of these deliveries, oldest first, in one query."""
    found: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    if not delivery_ids:
        return found
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    )
    for row in rows:
        found[row.delivery_id].append(row)
    return found


async def claim_due(
    session: AsyncSession, now: datetime, limit: int
) -> list[tuple[WebhookDelivery, Webhook]]:
    """Lock due pending deliveries with their webhook; rows another worker holds are skipped,
    so several workers never claim the same delivery."""
    rows = await session.execute(
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    return [(d, w) for d, w in rows.tuples()]


async def lease(session: AsyncSession, delivery_ids: list[uuid.UUID], until: datetime) -> None:
    """Push claimed deliveries out of the due set while they are being sent; a worker that
    dies mid-send leaves them due again at ``until`` (at-least-once, same event id)."""
    if delivery_ids:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(delivery_ids))
            .values(next_attempt_at=until)
        )


async def lock_pending(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    """The delivery, locked, while it is still pending (gone or finished: None)."""
    found: WebhookDelivery | None = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")
        .with_for_update()
    )
    return found
