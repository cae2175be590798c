"""Periodic task (arq cron): the scheduler tick — nightly backups, prune and check cadences."""

from __future__ import annotations

from datetime import UTC, datetime

from app.scheduler.service import platform_plan, run_tick
from workers.context import WorkerContext


async def schedule_tick(ctx: WorkerContext) -> dict[str, int]:
    services = ctx["services"]
    if not services.settings.scheduler_enabled:
        return {}
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    plans = ["owner", *(["platform"] if platform_plan(services.settings) else [])]
    for plan in plans:
        result = await run_tick(
            services.sessionmaker, services.redis, services.settings, now, plan=plan
        )
        prefix = "" if plan == "owner" else "platform_"
        counts.update(
            {
                f"{prefix}claimed": result.claimed,
                **{f"{prefix}{kind}": n for kind, n in result.created.items()},
                f"{prefix}already_running": result.already_running,
                f"{prefix}busy": result.busy,
                f"{prefix}cleared": result.cleared,
            }
        )
    return counts
