"""Periodic task (arq cron): the scheduler tick — nightly backups, prune and check cadences."""

from __future__ import annotations

from datetime import UTC, datetime

from app.scheduler.service import run_tick
from workers.context import WorkerContext


async def schedule_tick(ctx: WorkerContext) -> dict[str, int]:
    services = ctx["services"]
    if not services.settings.scheduler_enabled:
        return {}
    result = await run_tick(
        services.sessionmaker, services.redis, services.settings, datetime.now(UTC)
    )
    return {
        "claimed": result.claimed,
        **result.created,
        "already_running": result.already_running,
        "busy": result.busy,
        "cleared": result.cleared,
    }
