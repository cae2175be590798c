"""The job runner against real PostgreSQL and Redis, with small real handlers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.context import Handler, JobContext, JobOutcome, Services
from app.engine.errors import JobFailure
from app.engine.reconcile import reconcile
from app.engine.runner import JobRunner
from app.jobs import queue, service
from app.kit import subprocess as sp
from app.models import Account, Job, JobEvent, Pod
from app.models.base import utcnow
from app.models.kinds import JobKind
from app.models.shapes import JobError


class Recorder:
    def __init__(self) -> None:
        self.calls = 0
        self.failures: list[JobError] = []
        self.plan: list[Any] = []  # per call: JobOutcome | Exception | "sleep"

    async def run(self, ctx: JobContext) -> JobOutcome:
        self.calls += 1
        step = self.plan.pop(0) if self.plan else JobOutcome(result={"ok": True})
        await ctx.progress(force=True, phase="working", percent=50.0)
        await ctx.log("working hard")
        if step == "sleep":
            await sp.run(["sleep", "30"], cancel=ctx.cancel, grace=1)
            return JobOutcome()
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[no-any-return]

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        self.failures.append(error)


@pytest.fixture
def recorder(handlers: dict[JobKind, Handler]) -> Recorder:
    handler = Recorder()
    handlers[JobKind.REFRESH] = handler
    return handler


async def make_job(services: Services, **over: Any) -> uuid.UUID:
    async with services.sessionmaker() as session:
        account = Account(name="a")
        session.add(account)
        await session.flush()
        pod = Pod(account_id=account.id, name="p", app="x")
        session.add(pod)
        await session.flush()
        job, _ = await service.create(
            session,
            services.redis,
            services.settings,
            kind=over.pop("kind", JobKind.REFRESH),
            pod_id=pod.id,
            account_id=account.id,
            **over,
        )
        await session.commit()
        return job.id


async def load(services: Services, job_id: uuid.UUID) -> Job:
    async with services.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def test_success_records_result_progress_and_events(
    services: Services, recorder: Recorder
) -> None:
    written: list[str] = []

    async def finalize(session: AsyncSession) -> None:
        written.append("in-transaction")

    recorder.plan = [JobOutcome(result={"answer": 42}, finalize=finalize)]
    job_id = await make_job(services)
    result = await JobRunner(services).execute(job_id)
    assert result.status == "succeeded"
    job = await load(services, job_id)
    assert (job.status, job.result, job.error) == ("succeeded", {"answer": 42}, None)
    assert job.progress.percent == 100.0
    assert job.started_at
    assert job.finished_at
    assert written == ["in-transaction"]
    async with services.sessionmaker() as session:
        types = (
            await session.scalars(
                select(JobEvent.type).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            )
        ).all()
    assert types[0] == "state"
    assert types[-1] == "state"
    assert "log" in types
    assert "progress" in types
    # Delivered again (arq may do that): the job is finished, nothing runs twice.
    assert (await JobRunner(services).execute(job_id)).status == "skipped"
    assert recorder.calls == 1


async def test_retryable_failure_retries_with_backoff_then_fails(
    services: Services, recorder: Recorder
) -> None:
    boom = JobFailure("storage_unreachable", "storage down")
    recorder.plan = [boom, boom, boom]
    job_id = await make_job(services, max_attempts=2)
    first = await JobRunner(services).execute(job_id)
    assert first.status == "retry"
    assert first.retry_in is not None
    job = await load(services, job_id)
    assert (job.status, job.attempt) == ("queued", 2)
    assert job.error is not None
    assert job.error.stored() == {
        "code": "storage_unreachable",
        "message": "storage down",
        "hint": None,
    }
    assert job.run_after is not None
    assert job.run_after > utcnow()
    async with services.sessionmaker() as session:  # time passes
        await session.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow()))
        await session.commit()
    second = await JobRunner(services).execute(job_id)
    assert second.status == "failed"
    job = await load(services, job_id)
    assert job.status == "failed"
    assert job.error is not None
    assert job.error.code == "storage_unreachable"
    assert recorder.failures
    assert recorder.failures[0].code == "storage_unreachable"


async def test_not_yet_due_retry_is_not_run_early(services: Services, recorder: Recorder) -> None:
    recorder.plan = [JobFailure("repository_locked", "locked")]
    job_id = await make_job(services)
    await JobRunner(services).execute(job_id)
    async with services.sessionmaker() as session:
        later = utcnow() + timedelta(minutes=5)
        await session.execute(update(Job).where(Job.id == job_id).values(run_after=later))
        await session.commit()
    assert (await JobRunner(services).execute(job_id)).status == "skipped"
    assert recorder.calls == 1


async def test_permanent_failure_and_unexpected_errors(
    services: Services, recorder: Recorder
) -> None:
    recorder.plan = [JobFailure("wrong_password", "nope", hint="fix it")]
    job_id = await make_job(services)
    assert (await JobRunner(services).execute(job_id)).status == "failed"
    job = await load(services, job_id)
    assert job.error is not None
    assert job.error.stored() == {"code": "wrong_password", "message": "nope", "hint": "fix it"}

    recorder.plan = [RuntimeError("secret-ish internals")]
    job_id = await make_job(services)
    await JobRunner(services).execute(job_id)
    job = await load(services, job_id)
    assert job.error is not None
    assert job.error.code == "internal"
    assert "secret-ish" not in job.error.message


async def test_cancel_interrupts_the_running_child(services: Services, recorder: Recorder) -> None:
    recorder.plan = ["sleep"]
    job_id = await make_job(services)
    task = asyncio.create_task(JobRunner(services).execute(job_id))
    for _ in range(100):
        if (await load(services, job_id)).status == "running" and recorder.calls:
            break
        await asyncio.sleep(0.05)
    async with services.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        await service.cancel(session, services.redis, services.settings, job)
        await session.commit()
    result = await asyncio.wait_for(task, timeout=15)
    assert result.status == "canceled"
    job = await load(services, job_id)
    assert job.status == "canceled"
    assert job.error is not None
    assert job.error.code == "canceled"


async def test_cancel_queued_is_immediate_and_finished_is_conflict(
    services: Services, recorder: Recorder
) -> None:
    job_id = await make_job(services)
    async with services.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        job = await service.cancel(session, services.redis, services.settings, job)
        await session.commit()
    assert job.status == "canceled"
    assert (await JobRunner(services).execute(job_id)).status == "skipped"
    assert recorder.calls == 0


async def test_reconciler_retries_jobs_of_dead_workers(
    services: Services, recorder: Recorder
) -> None:
    job_id = await make_job(services, max_attempts=2)
    stale = utcnow() - timedelta(seconds=services.settings.job_stale_seconds + 5)
    async with services.sessionmaker() as session:  # a worker claimed it, then died
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="running", worker_id="dead:1", heartbeat_at=stale)
        )
        await session.commit()
    counts = await reconcile(services)
    assert counts["requeued"] == 1
    job = await load(services, job_id)
    assert (job.status, job.attempt) == ("queued", 2)
    assert job.error is not None
    assert job.error.code == "worker_lost"
    assert await queue.held(services.redis, job_id)

    async with services.sessionmaker() as session:  # and died again, on its last attempt
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="running", worker_id="dead:2", heartbeat_at=stale)
        )
        await session.commit()
    counts = await reconcile(services)
    assert counts["failed"] == 1
    job = await load(services, job_id)
    assert job.status == "failed"
    assert job.finished_at is not None
    assert recorder.failures[-1].code == "worker_lost"
    await queue.forget(services.redis, services.settings.queue_name, job_id)


async def test_reconciler_enqueues_jobs_redis_lost(services: Services, recorder: Recorder) -> None:
    job_id = await make_job(services)
    await queue.forget(services.redis, services.settings.queue_name, job_id)  # "Redis flushed"
    assert not await queue.held(services.redis, job_id)
    async with services.sessionmaker() as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(created_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
    assert (await reconcile(services))["enqueued"] == 1
    assert await queue.held(services.redis, job_id)
    assert (await reconcile(services))["enqueued"] == 0
    await queue.forget(services.redis, services.settings.queue_name, job_id)


async def test_unknown_kind_fails_cleanly(
    services: Services, handlers: dict[JobKind, Handler]
) -> None:
    """A kind without a handler in the worker's table (e.g. one a newer version added)."""
    del handlers[JobKind.EXPORT]
    job_id = await make_job(services, kind=JobKind.EXPORT)
    assert (await JobRunner(services).execute(job_id)).status == "failed"
    job = await load(services, job_id)
    assert job.error is not None
    assert job.error.code == "unknown_kind"


async def test_a_kind_this_version_does_not_know_is_listed_and_fails_cleanly(
    services: Services,
) -> None:
    """A row a newer version wrote (rolling deploy): it loads, and the runner fails it as
    `unknown_kind` instead of leaving it queued for ever."""
    job_id = await make_job(services)
    async with services.sessionmaker() as session:
        await session.execute(
            text("UPDATE jobs SET kind = 'future' WHERE id = :id"), {"id": job_id}
        )
        await session.commit()
    job = await load(services, job_id)
    assert job.kind == "future"
    assert (await JobRunner(services).execute(job_id)).status == "failed"
    job = await load(services, job_id)
    assert job.error is not None
    assert job.error.code == "unknown_kind"


async def test_a_second_restore_is_refused_not_merged(services: Services) -> None:
    from app.jobs.errors import PodBusy

    job_id = await make_job(services, kind=JobKind.RESTORE)
    async with services.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        with pytest.raises(PodBusy) as busy:
            await service.create(
                session,
                services.redis,
                services.settings,
                kind=JobKind.RESTORE,
                pod_id=job.pod_id,
                account_id=job.account_id,
                idempotent=False,
            )
        assert str(job_id) in (busy.value.hint or "")
        again, created = await service.create(
            session,
            services.redis,
            services.settings,
            kind=JobKind.RESTORE,
            pod_id=job.pod_id,
            account_id=job.account_id,
        )
        assert (again.id, created) == (job_id, False)
        await session.rollback()
    await queue.forget(services.redis, services.settings.queue_name, job_id)
