"""Job rules: create (idempotent per pod), cancel, read, and events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import Select, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Principal
from app.config import Settings
from app.db import after_commit
from app.engine import queue
from app.errors import NotFound
from app.jobs.errors import JobAlreadyFinished, PodBusy
from app.jobs.kinds import (
    ACTIVE_STATUSES,
    EXCLUSIVE_ACTIVE_SQL,
    EXCLUSIVE_KINDS,
    FINAL_STATUSES,
    JobKind,
    JobStatus,
)
from app.jobs.schemas import JobErrorRead, JobEventRead, JobRead, Progress
from app.kit import fastread
from app.models import Job, JobEvent

EXCLUSIVE_ACTIVE = text(EXCLUSIVE_ACTIVE_SQL)


def now() -> datetime:
    return datetime.now(UTC)


async def create(
    session: AsyncSession,
    redis: ArqRedis,
    settings: Settings,
    *,
    kind: JobKind,
    pod_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    trigger: str = "manual",
    plan: str = "owner",
    params: dict[str, Any] | None = None,
    max_attempts: int | None = None,
    idempotent: bool = True,
) -> tuple[Job, bool]:
    """Insert a queued job and enqueue it after commit. Returns (job, created).

    For exclusive kinds (backup, restore, prune, check) the database allows one queued or
    running job per pod: a second backup trigger gets the existing backup back
    (created=False); any other exclusive job in the way — or the same kind when not
    ``idempotent`` (two restores are two different requests) — is a 409 naming it.
    """
    job_id = uuid.uuid4()
    values = {
        "id": job_id,
        "pod_id": pod_id,
        "account_id": account_id,
        "plan": plan,
        "kind": kind,
        "status": JobStatus.QUEUED,
        "trigger": trigger,
        "params": params or {},
        "progress": {"phase": "queued"},
        "attempt": 1,
        "max_attempts": max_attempts or settings.job_max_attempts,
        "cancel_requested": False,
        "created_at": now(),
    }
    if kind in EXCLUSIVE_KINDS and pod_id is not None:
        stmt = (
            pg_insert(Job)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=["pod_id"],
                # Literal SQL, not bind parameters: after five executions PostgreSQL may use
                # a generic plan, which cannot match the partial unique index.
                index_where=EXCLUSIVE_ACTIVE,
            )
            .returning(Job.id)
        )
        inserted = await session.scalar(stmt)
        if inserted is None:
            existing = await session.scalar(
                select(Job).where(
                    Job.pod_id == pod_id,
                    Job.status.in_(ACTIVE_STATUSES),
                    Job.kind.in_(EXCLUSIVE_KINDS),
                )
            )
            same = existing is not None and existing.kind == kind and existing.plan == plan
            if same and idempotent:
                assert existing is not None
                return existing, False
            busy = existing.kind if existing else "another job"
            noun = f"a {existing.kind}" if existing else busy
            raise PodBusy(
                f"{noun} job is {existing.status if existing else 'active'} for this pod",
                hint=f"wait for job {existing.id if existing else ''} to finish, or cancel it",
                detail={"job_id": str(existing.id) if existing else None, "kind": busy},
            )
    else:
        await session.execute(insert(Job).values(**values))
    job = await session.get(Job, job_id)
    assert job is not None
    await add_event(session, job.id, "state", {"status": JobStatus.QUEUED, "attempt": 1})

    async def _enqueue() -> None:
        await queue.enqueue(redis, settings.queue_name, job_id)

    after_commit(session, _enqueue)
    return job, True


async def add_event(
    session: AsyncSession, job_id: uuid.UUID, type_: str, data: dict[str, Any]
) -> None:
    session.add(JobEvent(job_id=job_id, type=type_, data=data, at=now()))
    await session.flush()


async def get_visible(session: AsyncSession, principal: Principal, job_id: uuid.UUID) -> Job:
    job = await session.get(Job, job_id)
    if (
        job is None
        or not principal.owns(job.account_id)
        or (job.plan == "platform" and not principal.is_admin)
    ):
        raise NotFound("Job not found", hint="check the job id")
    return job


async def read_visible_owned(
    source: fastread.Source, principal: Principal, job_id: uuid.UUID
) -> tuple[JobRead, uuid.UUID]:
    """``get_visible`` then ``to_read`` in one plain statement (jobs are polled often); and
    the job's account."""
    row = await fastread.fetchrow(source, "SELECT * FROM jobs WHERE id = $1", job_id)
    if (
        row is None
        or not principal.owns(row["account_id"])
        or (row["plan"] == "platform" and not principal.is_admin)
    ):
        raise NotFound("Job not found", hint="check the job id")
    return read_mapping(row), row["account_id"]


def list_query(
    principal: Principal,
    *,
    pod_id: uuid.UUID | None = None,
    kind: JobKind | None = None,
    status: JobStatus | None = None,
) -> Select[tuple[Job]]:
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id)
    if pod_id is not None:
        stmt = stmt.where(Job.pod_id == pod_id)
    if not principal.is_admin:
        stmt = stmt.where(Job.account_id == principal.account_id, Job.plan == "owner")
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if status:
        stmt = stmt.where(Job.status == status)
    return stmt


async def cancel(session: AsyncSession, redis: ArqRedis, settings: Settings, job: Job) -> Job:
    """Queued: canceled at once. Running: the worker interrupts restic and ends it canceled."""
    if job.status in FINAL_STATUSES:
        raise JobAlreadyFinished(
            f"job {job.id} already {job.status}", hint="only queued or running jobs can be canceled"
        )
    if job.status == "queued":
        result = await session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == "queued")
            .values(
                status="canceled",
                cancel_requested=True,
                finished_at=now(),
                error={"code": "canceled", "message": "canceled before it started", "hint": None},
                progress={**(job.progress or {}), "phase": "canceled"},
            )
        )
        if result.rowcount:  # type: ignore[attr-defined]
            await add_event(session, job.id, "state", {"status": "canceled", "final": True})

            async def _forget() -> None:
                await queue.forget(redis, settings.queue_name, job.id)

            after_commit(session, _forget)
            await session.refresh(job)
            return job
    await session.execute(update(Job).where(Job.id == job.id).values(cancel_requested=True))
    await add_event(session, job.id, "log", {"level": "info", "message": "cancel requested"})
    await session.refresh(job)
    return job


def to_read(job: Job) -> JobRead:
    return JobRead(
        id=job.id,
        pod_id=job.pod_id,
        plan=job.plan,
        kind=job.kind,
        status=job.status,
        trigger=job.trigger,
        progress=Progress.model_validate(job.progress or {}),
        result=job.result,
        error=JobErrorRead.model_validate(job.error) if job.error else None,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested,
        params=_public_params(job.params or {}),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        run_after=job.run_after,
    )


def read_mapping(row: Mapping[str, Any]) -> JobRead:
    """A job as JobRead from a plain row or its JSON (the fast read paths)."""
    return JobRead.model_validate(
        {
            **{k: row[k] for k in JobRead.model_fields if k in row},
            "progress": row.get("progress") or {},
            "error": row.get("error") or None,
            "params": _public_params(row.get("params") or {}),
        }
    )


def _public_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not k.startswith("_")}


async def events_after(
    session: AsyncSession, job_id: uuid.UUID, after_id: int, limit: int = 500
) -> list[JobEventRead]:
    rows = (
        await session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
            .order_by(JobEvent.id)
            .limit(limit)
        )
    ).all()
    return [JobEventRead(id=r.id, at=r.at, type=r.type, data=r.data) for r in rows]


async def count_active(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(Job.status, func.count()).where(Job.status.in_(ACTIVE_STATUSES)).group_by(Job.status)
    )
    return {status: int(n) for status, n in rows.all()}
