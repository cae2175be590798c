"""Fleet-wide gauges read from PostgreSQL when /metrics is scraped (the record, not one
process's counters): active jobs, the oldest queued job, pods by last backup state."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.jobs import repository as jobs

JOBS_ACTIVE = Gauge(
    "podbackup_jobs_active", "Queued and running jobs (from PostgreSQL)", ["kind", "status"]
)
OLDEST_QUEUED = Gauge(
    "podbackup_job_oldest_queued_seconds", "Age of the oldest queued job that is due"
)
PODS_BY_STATUS = Gauge(
    "podbackup_pods_last_backup", "Pods by the status of their last backup", ["plan", "status"]
)
PODS_STALE = Gauge(
    "podbackup_pods_without_recent_success",
    "Pods with backups enabled and no success in 26 hours",
    ["plan"],
)

_QUERIES = {
    "last": """SELECT plan, coalesce(last_status, 'never'), count(*) FROM plan_states
               GROUP BY plan, coalesce(last_status, 'never')""",
    "stale": """SELECT plan, count(*) FROM plan_states
                WHERE next_run_at IS NOT NULL
                  AND (last_success_at IS NULL OR last_success_at < now() - interval '26 hours')
                GROUP BY plan""",
}


class DbMetrics:
    """Refreshed at most every ``min_interval`` seconds, however often it is scraped."""

    def __init__(self, engine: AsyncEngine, min_interval: float = 10.0) -> None:
        self.engine = engine
        self.min_interval = min_interval
        self._at = 0.0

    async def refresh(self) -> None:
        if time.monotonic() - self._at < self.min_interval:
            return
        self._at = time.monotonic()
        rows: dict[str, list[Any]] = {}
        async with self.engine.connect() as conn:
            active = await jobs.active_counts(conn)
            oldest = await jobs.oldest_due_queued_seconds(conn)
            for name, sql in _QUERIES.items():
                rows[name] = list((await conn.execute(text(sql))).all())
        JOBS_ACTIVE.clear()
        for (kind, status), n in active.items():
            JOBS_ACTIVE.labels(kind, status).set(n)
        OLDEST_QUEUED.set(oldest or 0.0)
        PODS_BY_STATUS.clear()
        for plan, status, n in rows["last"]:
            PODS_BY_STATUS.labels(plan, status).set(n)
        PODS_STALE.clear()
        for plan, n in rows["stale"]:
            PODS_STALE.labels(plan).set(n)
