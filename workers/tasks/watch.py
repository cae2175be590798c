"""Periodic task (arq cron): the light probe of every target that is due."""

from __future__ import annotations

from app.models.base import utcnow
from app.watch.service import watch
from workers.context import WorkerContext


async def watch_targets(ctx: WorkerContext) -> dict[str, int]:
    services = ctx["services"]
    if not services.settings.scheduler_enabled:
        return {}  # the watch serves the schedule: it runs in the workers that tick it
    result = await watch(services.sessionmaker, services.settings, services.keyring, utcnow())
    return {
        "probed": result.probed,
        "unavailable": result.unavailable,
        "went_unavailable": result.went_unavailable,
        "recovered": result.recovered,
        "rows_added": result.rows_added,
    }
