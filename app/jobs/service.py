"""Job rules: create (idempotent per pod), cancel, read, and events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Principal
from app.config import Settings
from app.db import after_commit
from app.errors import NotFound
from app.jobs import queue, repository
from app.jobs.errors import JobAlreadyFinished, PodBusy
from app.jobs.schemas import JobErrorRead, JobEventRead, JobRead, Progress
from app.kit import fastread
from app.models import Job
from app.models.kinds import FINAL_STATUSES, JobKind, JobStatus, Plan
from app.models.shapes import JobError, JobParams


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
    params: JobParams | None = None,
    max_attempts: int | None = None,
    idempotent: bool = True,
) -> tuple[Job, bool]:
    """Insert a queued job and enqueue it after commit. Returns (job, created).

    For exclusive kinds (backup, restore, prune, check) the database allows one queued or
    running job per pod: a second backup trigger gets the existing backup back
    (created=False); any other exclusive job in the way — or the same kind when not
    ``idempotent`` (two restores are two different requests) — is a 409 naming it.
    """
    job = await repository.create(
        session,
        kind=kind,
        pod_id=pod_id,
        account_id=account_id,
        trigger=trigger,
        plan=plan,
        params=params or JobParams(),
        max_attempts=max_attempts or settings.job_max_attempts,
    )
    if job is None:
        assert pod_id is not None
        existing = await repository.active_exclusive_of_pod(session, pod_id)
        if existing is not None and existing.kind == kind and existing.plan == plan and idempotent:
            return existing, False
        busy = existing.kind if existing else "another job"
        noun = f"a {existing.kind}" if existing else busy
        raise PodBusy(
            f"{noun} job is {existing.status if existing else 'active'} for this pod",
            hint=f"wait for job {existing.id if existing else ''} to finish, or cancel it",
            detail={"job_id": str(existing.id) if existing else None, "kind": busy},
        )
    job_id = job.id

    async def _enqueue() -> None:
        await queue.enqueue(redis, settings.queue_name, job_id)

    after_commit(session, _enqueue)
    return job, True


def _visible(principal: Principal, account_id: uuid.UUID | None, plan: str) -> bool:
    return principal.owns(account_id) and (plan != Plan.PLATFORM or principal.is_admin)


async def get_visible(session: AsyncSession, principal: Principal, job_id: uuid.UUID) -> Job:
    job = await repository.get(session, job_id)
    if job is None or not _visible(principal, job.account_id, job.plan):
        raise NotFound("Job not found", hint="check the job id")
    return job


async def read_visible_owned(
    source: fastread.Source, principal: Principal, job_id: uuid.UUID
) -> tuple[JobRead, uuid.UUID]:
    """``get_visible`` then ``to_read`` in one plain statement (jobs are polled often); and
    the job's account."""
    row = await repository.fetch_row(source, job_id)
    if row is None or not _visible(principal, row["account_id"], row["plan"]):
        raise NotFound("Job not found", hint="check the job id")
    return read_mapping(row), row["account_id"]


def list_query(
    principal: Principal,
    *,
    pod_id: uuid.UUID | None = None,
    kind: JobKind | None = None,
    status: JobStatus | None = None,
) -> Select[tuple[Job]]:
    if principal.is_admin:
        return repository.list_query(pod_id=pod_id, kind=kind, status=status)
    return repository.list_query(
        pod_id=pod_id,
        account_id=principal.account_id,
        owner_plan_only=True,
        kind=kind,
        status=status,
    )


async def cancel(session: AsyncSession, redis: ArqRedis, settings: Settings, job: Job) -> Job:
    """Queued: canceled at once. Running: the worker interrupts restic and ends it canceled."""
    if job.status in FINAL_STATUSES:
        raise JobAlreadyFinished(
            f"job {job.id} already {job.status}", hint="only queued or running jobs can be canceled"
        )
    if job.status == JobStatus.QUEUED:
        error = JobError(code="canceled", message="canceled before it started", hint=None)
        if await repository.cancel_queued(session, job, error):

            async def _forget() -> None:
                await queue.forget(redis, settings.queue_name, job.id)

            after_commit(session, _forget)
            await session.refresh(job)
            return job
    await repository.request_cancel(session, job.id)
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
        progress=Progress.model_validate(job.progress.stored()),
        result=job.result,
        error=JobErrorRead.model_validate(job.error.stored()) if job.error else None,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested,
        params=_public_params(job.params.stored()),
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
    rows = await repository.events_after(session, job_id, after_id, limit)
    return [JobEventRead(id=r.id, at=r.at, type=r.type, data=r.data) for r in rows]
