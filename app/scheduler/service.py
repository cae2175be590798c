"""Scheduler rules: plan cursors from settings, and a tick that turns due cursors into jobs.

A tick claims due ``plan_states`` rows (``FOR UPDATE SKIP LOCKED``, in batches, one
transaction each), creates at most one job per pod (backup first, then prune, then check),
advances the cursor it served, commits, and enqueues the new jobs after the commit. Any
number of schedulers may tick at once: a row is served by whoever locked it, and the unique
index on active exclusive jobs makes a doubled job impossible anyway.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import after_commit, commit
from app.jobs import repository as jobs
from app.jobs.repository import NewJob
from app.models.kinds import JobKind, Plan
from app.scheduler import planning, repository
from app.scheduler.enqueue import enqueue_many
from app.scheduler.planning import NOT_SCHEDULED, Cursors, PodSchedule
from app.scheduler.repository import (
    FIRST_ID,
    DueRow,
    PlatformPlan,
    SettingsRow,
    UnsupportedPlan,
)

log = logging.getLogger(__name__)

KINDS = (JobKind.BACKUP, JobKind.PRUNE, JobKind.CHECK)
_FIELD = {
    JobKind.BACKUP: "next_run_at",
    JobKind.PRUNE: "next_prune_at",
    JobKind.CHECK: "next_check_at",
}


def _schedule(row: SettingsRow) -> PodSchedule | None:
    return planning.schedule_of(
        row.pod_id, row.schedule, row.retention, row.verification, row.verified_ok
    )


def platform_plan(settings: Settings) -> PlatformPlan | None:
    """The platform plan's schedule, or None while the operator has no platform target."""
    if not settings.platform_repository:
        return None
    return PlatformPlan(
        window_start=settings.platform_window_start,
        window_end=settings.platform_window_end,
        timezone=settings.platform_timezone,
        prune_days=settings.platform_prune_interval_days,
        check_days=settings.platform_check_interval_days,
    )


def _platform(settings: Settings | None, plan: str) -> PlatformPlan | None:
    if plan != Plan.PLATFORM:
        return None
    source = platform_plan(settings) if settings is not None else None
    if source is None:
        raise UnsupportedPlan("platform backups are off: set PODBACKUP_PLATFORM_REPOSITORY")
    return source


async def replan(
    session: AsyncSession,
    pod_id: uuid.UUID,
    *,
    now: datetime | None = None,
    plan: str = "owner",
    settings: Settings | None = None,
) -> None:
    """Recompute the pod's cursors from its current settings (call after they change).

    Disabled, unverified or missing settings clear the cursors. Flushes; the caller commits.
    """
    now = now or datetime.now(UTC)
    platform = _platform(settings, plan)
    settings_row = await repository.settings_of(session, pod_id, plan, platform)
    existing = await repository.lock_cursors(session, pod_id, plan)
    pod = _schedule(settings_row) if settings_row is not None else None
    if pod is None and existing is None:
        return  # nothing to clear; no row needed for a pod that is not scheduled
    cursors = planning.plan(pod, now, existing or NOT_SCHEDULED)
    await repository.write_cursors(session, plan, [(pod_id, cursors)], overwrite=True)


async def plan_all(
    session: AsyncSession,
    now: datetime,
    *,
    plan: str = "owner",
    batch: int = 5000,
    settings: Settings | None = None,
) -> int:
    """Fill the missing cursors of every enabled, verified pod (new pods, pods just
    verified or re-enabled) — for the platform plan, of every pod holding data. Returns how
    many pods were planned. The caller commits."""
    platform = _platform(settings, plan)
    pod_ids = await repository.unplanned_ids(session, plan, platform)
    planned = 0
    for start in range(0, len(pod_ids), batch):
        chunk = pod_ids[start : start + batch]
        rows = await repository.planning_rows(session, plan, chunk[0], chunk[-1], platform)
        writes: list[tuple[uuid.UUID, Cursors]] = []
        for settings_row, existing in rows:
            pod = _schedule(settings_row)
            if pod is None:  # malformed schedule JSON; settings validation prevents it
                continue
            writes.append((pod.pod_id, planning.plan(pod, now, existing)))
        await repository.write_cursors(session, plan, writes, overwrite=False)
        planned += len(writes)
    return planned


@dataclass
class TickResult:
    claimed: int = 0
    created: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((k.value for k in KINDS), 0)
    )
    already_running: int = 0  # the same kind of job was active: cursor advanced, no new job
    busy: int = 0  # another exclusive job was active: left due, retried next tick
    cleared: int = 0  # settings no longer allow a schedule: cursors cleared
    job_ids: list[uuid.UUID] = field(default_factory=list)

    def add(self, other: TickResult) -> None:
        self.claimed += other.claimed
        for kind, n in other.created.items():
            self.created[kind] += n
        self.already_running += other.already_running
        self.busy += other.busy
        self.cleared += other.cleared
        self.job_ids.extend(other.job_ids)


async def tick(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    settings: Settings,
    now: datetime,
    *,
    plan: str = "owner",
) -> TickResult:
    """Serve every cursor due at ``now`` once: one pass over due pods in id order, so a
    busy pod is retried on the next tick, not in a loop within this one."""
    total = TickResult()
    after = FIRST_ID
    size = settings.scheduler_batch_size
    platform = _platform(settings, plan)
    while True:
        async with sessionmaker() as session:
            rows = await repository.claim_due(session, plan, now, after, size, platform)
            if not rows:
                break
            after = rows[-1].settings.pod_id
            total.add(await _serve(session, redis, settings, rows, now, plan))
            await commit(session)  # runs the enqueue registered by _serve
        if len(rows) < size:
            break
    if total.claimed:
        log.info(
            "scheduler: %d due, created %s, %d already running, %d busy, %d cleared",
            total.claimed,
            total.created,
            total.already_running,
            total.busy,
            total.cleared,
        )
    return total


def _pick(cursors: Cursors, now: datetime) -> JobKind | None:
    for kind in KINDS:
        due = getattr(cursors, _FIELD[kind])
        if due is not None and due <= now:
            return kind
    return None


def _advance(pod: PodSchedule, kind: JobKind, cursors: Cursors, now: datetime) -> Cursors:
    return replace(cursors, **{_FIELD[kind]: planning.after_run(pod, kind, now)})


async def _serve(
    session: AsyncSession,
    redis: ArqRedis,
    settings: Settings,
    rows: list[DueRow],
    now: datetime,
    plan: str,
) -> TickResult:
    """Decide each claimed row, insert the new jobs in one statement, write the cursors."""
    result = TickResult(claimed=len(rows))
    updates: list[tuple[uuid.UUID, Cursors]] = []
    wanted: list[tuple[NewJob, PodSchedule, DueRow, Cursors]] = []
    for row in rows:
        pod_id = row.settings.pod_id
        pod = _schedule(row.settings)
        if pod is None:  # disabled, unverified or deleted since it was planned
            updates.append((pod_id, NOT_SCHEDULED))
            result.cleared += 1
            continue
        cursors = row.cursors
        if pod.check_days is None:  # verification was switched off
            cursors = replace(cursors, next_check_at=None)
        kind = _pick(cursors, now)
        if kind is not None and row.active == (kind, plan):
            result.already_running += 1  # tonight's job is already on its way: advance
            updates.append((pod_id, _advance(pod, kind, cursors, now)))
        elif kind is not None and row.active is None:
            wanted.append((NewJob(uuid.uuid4(), pod_id, row.account_id, kind), pod, row, cursors))
        else:
            # Another exclusive job (a restore, tonight's backup before a prune…): leave
            # the cursor due and retry next tick; never queue behind it.
            result.busy += kind is not None
            if cursors != row.cursors:
                updates.append((pod_id, cursors))

    inserted = await jobs.create_scheduled(
        session, plan, [job for job, *_ in wanted], settings.job_max_attempts
    )
    # A job committed since the claim (e.g. a manual trigger) wins the unique index.
    late = await jobs.active_exclusive_of_pods(
        session, [job.pod_id for job, *_ in wanted if job.id not in inserted]
    )
    for job, pod, row, cursors in wanted:
        if job.id in inserted:
            result.created[job.kind.value] += 1
            result.job_ids.append(job.id)
        elif late.get(job.pod_id) == (job.kind, plan):
            result.already_running += 1
        else:
            result.busy += 1
            if cursors != row.cursors:
                updates.append((job.pod_id, cursors))
            continue
        updates.append((job.pod_id, _advance(pod, job.kind, cursors, now)))
    await repository.update_cursors(session, plan, updates)

    new_ids = list(result.job_ids)
    if new_ids:

        async def _enqueue() -> None:
            await enqueue_many(redis, settings.queue_name, new_ids)

        after_commit(session, _enqueue)
    return result


async def run_tick(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    settings: Settings,
    now: datetime,
    *,
    plan: str = "owner",
) -> TickResult:
    """What the cron runs: plan pods missing cursors (own transaction), then tick."""
    async with sessionmaker() as session:
        planned = await plan_all(session, now, plan=plan, settings=settings)
        await commit(session)
    if planned:
        log.info("scheduler: planned %d pod(s)", planned)
    return await tick(sessionmaker, redis, settings, now, plan=plan)
