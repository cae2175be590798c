"""Periodic task (arq cron): raise `backup.stale` for pods without a recent success."""

from __future__ import annotations

from app.models.base import utcnow
from app.stale.service import detect
from workers.context import WorkerContext


async def detect_stale(ctx: WorkerContext) -> dict[str, int]:
    services = ctx["services"]
    result = await detect(services.sessionmaker, services.settings, utcnow())
    return {"alerted": result.alerted, "rows_added": result.rows_added}
