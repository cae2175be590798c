"""Fleet-wide gauges read from PostgreSQL when /metrics is scraped (the record, not one
process's counters): active jobs, the oldest queued job, pods by last backup state, pods
past their RPO, the summed repository size. Every API replica exports the same values:
aggregate them with max, not sum."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from app.jobs import repository as jobs
from app.plans import repository as plan_states
from app.watch import repository as watch

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
PODS_PAST_RPO = Gauge(
    "podbackup_pods_past_rpo",
    "Pods past their RPO: `backup.stale` raised (PODBACKUP_STALE_AFTER_HOURS), no success since",
    ["plan"],
)
TARGETS_UNAVAILABLE = Gauge(
    "podbackup_targets_unavailable",
    "Pods whose target the last light probe found unavailable (`target.unavailable` raised)",
    ["plan"],
)
REPO_BYTES = Gauge(
    "podbackup_repository_size_bytes",
    "Summed size of the measured repositories (restic raw-data, from PostgreSQL)",
    ["plan"],
)
REPOS_MEASURED = Gauge(
    "podbackup_repositories_measured", "Repositories with a measured size", ["plan"]
)
COPY_LAG_SNAPSHOTS = Gauge(
    "podbackup_copy_lag_snapshots",
    "Primary snapshots not yet in the second copies, summed over pods with a copy",
)
COPY_LAG_SECONDS = Gauge(
    "podbackup_copy_lag_seconds",
    "The largest age of a snapshot not yet copied, over pods with a second copy (0: current)",
)
COPIES_LAGGING = Gauge(
    "podbackup_copies_lagging",
    "Pods whose `copy.lagging` is raised (PODBACKUP_COPY_LAG_ALERT_HOURS), not yet cleared",
)


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
        async with self.engine.connect() as conn:
            active = await jobs.active_counts(conn)
            oldest = await jobs.oldest_due_queued_seconds(conn)
            last = await plan_states.last_status_counts(conn)
            stale = await plan_states.stale_counts(conn)
            past_rpo = await plan_states.past_rpo_counts(conn)
            sizes = await plan_states.size_totals(conn)
            unavailable = await watch.unavailable_counts(conn)
            lag = await plan_states.copy_lag(conn)
            lagging = await plan_states.copies_lagging_count(conn)
        JOBS_ACTIVE.clear()
        for (kind, status), n in active.items():
            JOBS_ACTIVE.labels(kind, status).set(n)
        OLDEST_QUEUED.set(oldest or 0.0)
        PODS_BY_STATUS.clear()
        for plan, status, n in last:
            PODS_BY_STATUS.labels(plan, status).set(n)
        PODS_STALE.clear()
        for plan, n in stale:
            PODS_STALE.labels(plan).set(n)
        PODS_PAST_RPO.clear()
        PODS_PAST_RPO.labels("owner").set(0)  # 0, not absent: the plan stale detection watches
        for plan, n in past_rpo:
            PODS_PAST_RPO.labels(plan).set(n)
        TARGETS_UNAVAILABLE.clear()
        TARGETS_UNAVAILABLE.labels("owner").set(0)  # 0, not absent: the plan that is watched
        for plan, n in unavailable:
            TARGETS_UNAVAILABLE.labels(plan).set(n)
        now = datetime.now(UTC)
        COPY_LAG_SNAPSHOTS.set(sum(behind for _, _, behind, _ in lag))
        COPY_LAG_SECONDS.set(
            max((plan_states.seconds_behind(o, now) for *_, o in lag), default=0.0)
        )
        COPIES_LAGGING.set(lagging)
        REPO_BYTES.clear()
        REPOS_MEASURED.clear()
        for plan, measured, size in sizes:
            REPOS_MEASURED.labels(plan).set(measured)
            REPO_BYTES.labels(plan).set(size)
