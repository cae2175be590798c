"""Periodic task (arq cron): send due webhook deliveries."""

from __future__ import annotations

from app.models.base import utcnow
from app.webhooks.delivery import deliver_due
from workers.context import WorkerContext


async def deliver_webhooks(ctx: WorkerContext) -> dict[str, int]:
    return await deliver_due(ctx["services"], utcnow())
