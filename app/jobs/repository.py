"""Every statement on the ``jobs`` table (and its ``job_events``), as named transitions.

Callers own the transaction: nothing here commits (a flush at most). The worker-side
transitions are guarded by ``status = 'running' AND worker_id = me`` so that repeating one
(after a dropped connection, or a second delivery of the same job) never records twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, any_, cast, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ColumnElement

from app.kit import fastread
from app.models import Job, JobEvent
from app.models.base import utcnow
from app.models.kinds import (
    ACTIVE_STATUSES,
    EXCLUSIVE_ACTIVE_SQL,
    EXCLUSIVE_KINDS,
    JobKind,
    JobStatus,
    Plan,
)
from app.models.shapes import JobError, JobParams, JobProgress

JsonDict = dict[str, Any]

# Literal SQL, not bind parameters: after five executions PostgreSQL may use a generic
# plan, which cannot match the partial unique index.
_EXCLUSIVE_ACTIVE = text(EXCLUSIVE_ACTIVE_SQL)


def active_exclusive() -> list[ColumnElement[bool]]:
    """Where-clauses of a pod's active exclusive job (for joins from other tables)."""
    return [Job.status.in_(ACTIVE_STATUSES), Job.kind.in_(EXCLUSIVE_KINDS)]


# -- events -------------------------------------------------------------------------------


async def add_event(
    session: AsyncSession,
    job_id: uuid.UUID,
    type_: str,
    data: JsonDict,
    at: datetime | None = None,
) -> None:
    session.add(JobEvent(job_id=job_id, type=type_, data=data, at=at or utcnow()))
    await session.flush()


async def events_after(
    session: AsyncSession, job_id: uuid.UUID, after_id: int, limit: int = 500
) -> Sequence[JobEvent]:
    return (
        await session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
            .order_by(JobEvent.id)
            .limit(limit)
        )
    ).all()


# -- reads --------------------------------------------------------------------------------


async def get(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id)


async def fetch_row(source: fastread.Source, job_id: uuid.UUID) -> Mapping[str, Any] | None:
    """The job as a plain row, in one statement (jobs are polled often)."""
    row: Mapping[str, Any] | None = await fastread.fetchrow(
        source, "SELECT * FROM jobs WHERE id = $1", job_id
    )
    return row


def list_query(
    *,
    pod_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
    owner_plan_only: bool = False,
    kind: JobKind | None = None,
    status: JobStatus | None = None,
) -> Select[tuple[Job]]:
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id)
    if pod_id is not None:
        stmt = stmt.where(Job.pod_id == pod_id)
    if account_id is not None:
        stmt = stmt.where(Job.account_id == account_id)
    if owner_plan_only:
        stmt = stmt.where(Job.plan != Plan.PLATFORM)  # the owner's plans: primary and copy
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if status:
        stmt = stmt.where(Job.status == status)
    return stmt


async def active_exclusive_of_pod(session: AsyncSession, pod_id: uuid.UUID) -> Job | None:
    job: Job | None = await session.scalar(
        select(Job).where(Job.pod_id == pod_id, *active_exclusive())
    )
    return job


async def active_exclusive_of_pods(
    session: AsyncSession, pod_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[JobKind, str]]:
    """The active exclusive job of each pod: pod id → (kind, plan)."""
    if not pod_ids:
        return {}
    rows = await session.execute(
        select(Job.pod_id, Job.kind, Job.plan).where(
            Job.pod_id == any_(cast(list(pod_ids), ARRAY(UUID))), *active_exclusive()
        )
    )
    return {pod_id: (kind, plan) for pod_id, kind, plan in rows.all() if pod_id is not None}


async def active_index_job(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, snapshot_id: str
) -> Job | None:
    job: Job | None = await session.scalar(
        select(Job)
        .where(
            Job.pod_id == pod_id,
            Job.plan == plan,
            Job.kind == JobKind.INDEX,
            Job.status.in_(ACTIVE_STATUSES),
            Job.params["snapshot_id"].astext == snapshot_id,
        )
        .limit(1)
    )
    return job


async def active_counts(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """Queued and running jobs by (kind, status), for the fleet gauges."""
    rows = await conn.execute(
        select(Job.kind, Job.status, func.count())
        .where(Job.status.in_(ACTIVE_STATUSES))
        .group_by(Job.kind, Job.status)
    )
    return {(kind.value, status.value): int(n) for kind, status, n in rows.all()}


async def oldest_due_queued_seconds(conn: AsyncConnection) -> float | None:
    """How long the longest-waiting due job has been due (None: there is none); a retry
    waits from its ``run_after``, not from the job's creation."""
    age = await conn.scalar(
        text(
            "SELECT EXTRACT(EPOCH FROM now() - min(coalesce(run_after, created_at))) FROM jobs"
            " WHERE status = 'queued' AND (run_after IS NULL OR run_after <= now())"
        )
    )
    return None if age is None else float(age)


# -- creating -----------------------------------------------------------------------------


async def create(
    session: AsyncSession,
    *,
    kind: JobKind,
    pod_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    trigger: str,
    plan: str,
    params: JobParams,
    max_attempts: int,
) -> Job | None:
    """Insert a queued job with its ``queued`` state event. None: the pod already has an
    active exclusive job (the unique index decided; nothing was inserted)."""
    job_id = uuid.uuid4()
    values: JsonDict = {
        "id": job_id,
        "pod_id": pod_id,
        "account_id": account_id,
        "plan": plan,
        "kind": kind,
        "status": JobStatus.QUEUED,
        "trigger": trigger,
        "params": params,
        "progress": JobProgress(phase="queued"),
        "attempt": 1,
        "max_attempts": max_attempts,
        "cancel_requested": False,
        "created_at": utcnow(),
    }
    if kind in EXCLUSIVE_KINDS and pod_id is not None:
        inserted = await session.scalar(
            pg_insert(Job)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["pod_id"], index_where=_EXCLUSIVE_ACTIVE)
            .returning(Job.id)
        )
        if inserted is None:
            return None
    else:
        await session.execute(insert(Job).values(**values))
    job = await session.get(Job, job_id)
    assert job is not None
    await add_event(session, job.id, "state", {"status": "queued", "attempt": 1})
    return job


@dataclass(frozen=True)
class NewJob:
    id: uuid.UUID
    pod_id: uuid.UUID
    account_id: uuid.UUID
    kind: JobKind


# One multi-row insert per batch, the same columns as ``create`` (same unique index decides).
_INSERT_SCHEDULED = f"""
INSERT INTO jobs (id, pod_id, account_id, plan, kind, status, trigger, params, progress,
                  attempt, max_attempts, cancel_requested, created_at)
SELECT u.id, u.pod_id, u.account_id, :plan, u.kind, 'queued', 'schedule', '{{}}'::jsonb,
       '{{"phase": "queued"}}'::jsonb, 1, :max_attempts, false, clock_timestamp()
FROM unnest(CAST(:ids AS uuid[]), CAST(:pods AS uuid[]), CAST(:accounts AS uuid[]),
            CAST(:kinds AS text[])) AS u(id, pod_id, account_id, kind)
ON CONFLICT (pod_id) WHERE {EXCLUSIVE_ACTIVE_SQL} DO NOTHING
RETURNING id
"""

_INSERT_SCHEDULED_EVENTS = """
INSERT INTO job_events (job_id, at, type, data)
SELECT u.id, clock_timestamp(), 'state', '{"status": "queued", "attempt": 1}'::jsonb
FROM unnest(CAST(:ids AS uuid[])) AS u(id)
"""


async def create_scheduled(
    session: AsyncSession, plan: str, jobs: Sequence[NewJob], max_attempts: int
) -> set[uuid.UUID]:
    """Insert queued ``schedule`` jobs in bulk, as ``create`` does one by one (a ``queued``
    state event each); a pod with an active exclusive job keeps it. Returns the ids
    actually inserted."""
    if not jobs:
        return set()
    params = {
        "plan": plan,
        "max_attempts": max_attempts,
        "ids": [j.id for j in jobs],
        "pods": [j.pod_id for j in jobs],
        "accounts": [j.account_id for j in jobs],
        "kinds": [j.kind.value for j in jobs],
    }
    inserted = set((await session.scalars(text(_INSERT_SCHEDULED), params)).all())
    if inserted:
        await session.execute(text(_INSERT_SCHEDULED_EVENTS), {"ids": list(inserted)})
    return inserted


# -- cancel (API side) --------------------------------------------------------------------


async def cancel_queued(session: AsyncSession, job: Job, error: JobError) -> bool:
    """A queued job ends canceled at once. False: it is no longer queued."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.CANCELED,
            cancel_requested=True,
            finished_at=utcnow(),
            error=error,
            progress=job.progress.model_copy(update={"phase": "canceled"}),
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await add_event(session, job.id, "state", {"status": "canceled", "final": True})
    return True


async def request_cancel(session: AsyncSession, job_id: uuid.UUID) -> None:
    """A running job: its worker sees the flag on its next heartbeat."""
    await session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    await add_event(session, job_id, "log", {"level": "info", "message": "cancel requested"})


# -- worker transitions -------------------------------------------------------------------


def _mine(job_id: uuid.UUID, worker_id: str) -> list[ColumnElement[bool]]:
    return [Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker_id == worker_id]


async def claim(session: AsyncSession, job_id: uuid.UUID, worker_id: str) -> Job | None:
    """queued → running for this worker, if it is queued and due. None: not ours to run
    (finished, running elsewhere, canceled, or a retry that is not due yet)."""
    ts = utcnow()
    job = await session.scalar(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.QUEUED,
            (Job.run_after.is_(None)) | (Job.run_after <= ts + timedelta(seconds=1)),
        )
        .values(
            status=JobStatus.RUNNING,
            worker_id=worker_id,
            heartbeat_at=ts,
            started_at=func.coalesce(Job.started_at, ts),
            run_after=None,
            progress=JobProgress(phase="starting"),
        )
        .returning(Job)
    )
    if job is None:
        return None
    await add_event(
        session,
        job_id,
        "state",
        {"status": "running", "attempt": job.attempt, "worker": worker_id},
        at=ts,
    )
    return job


async def release(session: AsyncSession, job_id: uuid.UUID, worker_id: str) -> None:
    """running → queued, untouched otherwise: the worker is shutting down."""
    await session.execute(
        update(Job)
        .where(*_mine(job_id, worker_id))
        .values(
            status=JobStatus.QUEUED,
            worker_id=None,
            heartbeat_at=None,
            progress=JobProgress(phase="queued"),
        )
    )


async def heartbeat(session: AsyncSession, job_id: uuid.UUID, worker_id: str) -> bool | None:
    """The worker is alive. Returns whether a cancel was requested; None when the job is no
    longer this worker's (deleted with its pod, or taken over by the reconciler)."""
    row = (
        await session.execute(
            update(Job)
            .where(*_mine(job_id, worker_id))
            .values(heartbeat_at=utcnow())
            .returning(Job.cancel_requested)
        )
    ).first()
    return None if row is None else bool(row[0])


async def set_progress(session: AsyncSession, job_id: uuid.UUID, progress: JobProgress) -> None:
    await session.execute(update(Job).where(Job.id == job_id).values(progress=progress))
    await add_event(session, job_id, "progress", progress.stored())


async def requeue(
    session: AsyncSession,
    job: Job,
    worker_id: str,
    *,
    error: JobError,
    delay: float,
    progress: JobProgress,
) -> bool:
    """running → queued for attempt + 1 after ``delay`` seconds. False: not ours any more."""
    ts = utcnow()
    result = await session.execute(
        update(Job)
        .where(*_mine(job.id, worker_id))
        .values(
            status=JobStatus.QUEUED,
            attempt=Job.attempt + 1,
            run_after=ts + timedelta(seconds=delay),
            worker_id=None,
            heartbeat_at=None,
            error=error,
            progress=progress.model_copy(update={"phase": "waiting to retry"}),
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    data = {
        "status": "queued",
        "attempt": job.attempt + 1,
        "retry_in": delay,
        "error": error.stored(),
    }
    await add_event(session, job.id, "state", data, at=ts)
    return True


async def finish(
    session: AsyncSession,
    job_id: uuid.UUID,
    worker_id: str,
    status: JobStatus,
    *,
    result: JsonDict | None,
    error: JobError | None,
    progress: JobProgress,
) -> datetime | None:
    """running → succeeded | partial | failed | canceled. Returns the time recorded, or
    None when the job is not this worker's any more (nothing written)."""
    ts = utcnow()
    done = await session.execute(
        update(Job)
        .where(*_mine(job_id, worker_id))
        .values(
            status=status,
            result=result,
            error=error,
            finished_at=ts,
            progress=progress,
            heartbeat_at=ts,
        )
    )
    return ts if done.rowcount else None  # type: ignore[attr-defined]


async def finished_event(
    session: AsyncSession,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    result: JsonDict | None,
    error: JobError | None,
    at: datetime,
) -> None:
    stored_error = error.stored() if error is not None else None
    data = {"status": status.value, "final": True, "error": stored_error, "result": result}
    await add_event(session, job_id, "state", data, at=at)


async def replace_failure(
    session: AsyncSession, job_id: uuid.UUID, *, result: JsonDict, error: JobError
) -> None:
    """A failed job's result and error, rewritten by its handler (a check's report)."""
    await session.execute(update(Job).where(Job.id == job_id).values(result=result, error=error))


# -- reconciler ---------------------------------------------------------------------------


async def lock_stale(session: AsyncSession, stale_before: datetime, limit: int) -> Sequence[Job]:
    """Running jobs whose worker stopped beating, locked (others' locked rows skipped)."""
    return (
        await session.scalars(
            select(Job)
            .where(
                Job.status == JobStatus.RUNNING,
                or_(Job.heartbeat_at < stale_before, Job.heartbeat_at.is_(None)),
            )
            .with_for_update(skip_locked=True)
            .limit(limit)
        )
    ).all()


async def requeue_lost(session: AsyncSession, job: Job, error: JobError) -> None:
    """A locked stale job (``lock_stale``) → queued for its next attempt, due now."""
    ts = utcnow()
    job.status, job.attempt = JobStatus.QUEUED, job.attempt + 1
    job.worker_id, job.heartbeat_at, job.run_after = None, None, ts
    job.error = error
    job.progress = job.progress.model_copy(update={"phase": "waiting to retry"})
    data = {"status": "queued", "attempt": job.attempt, "error": error.stored()}
    await add_event(session, job.id, "state", data, at=ts)


async def fail_lost(session: AsyncSession, job: Job, error: JobError) -> None:
    """A locked stale job (``lock_stale``) on its last attempt → failed."""
    ts = utcnow()
    job.status, job.finished_at = JobStatus.FAILED, ts
    job.error = error
    job.progress = job.progress.model_copy(update={"phase": "failed"})
    data = {"status": "failed", "final": True, "error": error.stored()}
    await add_event(session, job.id, "state", data, at=ts)


async def queued_before(
    session: AsyncSession, created_before: datetime, limit: int
) -> list[tuple[uuid.UUID, datetime | None]]:
    """Queued jobs (oldest first) with the time each may run."""
    rows = await session.execute(
        select(Job.id, Job.run_after)
        .where(Job.status == JobStatus.QUEUED, Job.created_at < created_before)
        .order_by(Job.created_at)
        .limit(limit)
    )
    return [(job_id, run_after) for job_id, run_after in rows.all()]
