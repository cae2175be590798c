"""Periodic tasks (arq cron): reconcile jobs with Redis and with worker heartbeats; sweep
expired and orphaned export archives."""

from __future__ import annotations

from app.engine.reconcile import reconcile
from app.exports.cleanup import sweep_orphans
from workers.context import WorkerContext


async def reconcile_jobs(ctx: WorkerContext) -> dict[str, int]:
    return await reconcile(ctx["services"])


async def expire_exports(ctx: WorkerContext) -> int:
    from app.exports.cleanup import expire_exports as run

    return await run(ctx["services"])


async def sweep_export_orphans(ctx: WorkerContext) -> int:
    return await sweep_orphans(ctx["services"])
