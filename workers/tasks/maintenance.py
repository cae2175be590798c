"""Periodic tasks (arq cron): reconcile jobs with Redis and with worker heartbeats."""

from __future__ import annotations

from app.engine.reconcile import reconcile
from workers.context import WorkerContext


async def reconcile_jobs(ctx: WorkerContext) -> dict[str, int]:
    return await reconcile(ctx["services"])


async def expire_exports(ctx: WorkerContext) -> int:
    from app.exports.cleanup import expire_exports as run

    return await run(ctx["services"])
