"""The job runner when its own database connection dies under it (deterministic: the
handler terminates its own backend mid-transaction). A lost connection is a retryable
``database_unavailable`` failure — never ``internal`` — and the write that records a
job's end is retried on a fresh connection instead of leaving the job `running`."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.engine.context import Handler, JobContext, JobOutcome, Services
from app.engine.runner import JobRunner
from app.handlers import HANDLERS
from app.integrations.restic import Restic
from app.jobs import service
from app.kit.crypto import Keyring
from app.main import make_redis
from app.models import Account, Job, Pod
from app.models.kinds import JobKind
from app.models.shapes import JobError


@pytest.fixture
def handlers() -> dict[JobKind, Handler]:
    return dict(HANDLERS)


@pytest.fixture
async def services(
    app: FastAPI, settings: Settings, handlers: dict[JobKind, Handler]
) -> AsyncIterator[Services]:
    redis = make_redis(settings)
    yield Services(
        settings=settings,
        engine=app.state.engine,
        sessionmaker=app.state.sessionmaker,
        keyring=Keyring.from_settings(settings.secret_keys),
        restic=await Restic.detect(settings.restic_binary, grace=2),
        redis=redis,
        worker_id=f"{socket.gethostname()}:{os.getpid()}:faults",
        handlers=handlers,
    )
    await redis.aclose()


async def kill_own_backend(session: AsyncSession) -> None:
    """Terminate the backend this session is using, then use it again."""
    pid = await session.scalar(text("SELECT pg_backend_pid()"))
    async with session.bind.connect() as other:  # type: ignore[union-attr]
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await session.execute(text("SELECT 1"))  # raises: the connection is gone


class DyingHandler:
    """Step "handler": its own query's connection dies. Step "finalize": the transaction
    recording the job's end loses its connection once."""

    def __init__(self) -> None:
        self.step = "handler"
        self.finalized = 0

    async def run(self, ctx: JobContext) -> JobOutcome:
        if self.step == "handler":
            async with ctx.session() as session:
                await kill_own_backend(session)

        async def finalize(session: AsyncSession) -> None:
            self.finalized += 1
            if self.finalized == 1:
                await kill_own_backend(session)

        return JobOutcome(result={"ok": True}, finalize=finalize)

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        pass


@pytest.fixture
def handler(handlers: dict[JobKind, Handler]) -> DyingHandler:
    h = DyingHandler()
    handlers[JobKind.REFRESH] = h
    return h


async def make_job(services: Services) -> uuid.UUID:
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
            kind=JobKind.REFRESH,
            pod_id=pod.id,
            account_id=account.id,
        )
        await session.commit()
        return job.id


async def load(services: Services, job_id: uuid.UUID) -> Job:
    async with services.sessionmaker() as session:
        job = await session.scalar(select(Job).where(Job.id == job_id))
        assert job is not None
        return job


async def test_lost_connection_in_a_handler_is_a_retryable_database_failure(
    services: Services, handler: DyingHandler
) -> None:
    job_id = await make_job(services)
    result = await JobRunner(services).execute(job_id)
    assert result.status == "retry"
    job = await load(services, job_id)
    assert job.status == "queued"
    assert job.attempt == 2
    assert job.error is not None
    assert job.error.code == "database_unavailable"
    assert job.error.hint


async def test_the_end_of_a_job_is_recorded_after_its_connection_drops(
    services: Services, handler: DyingHandler
) -> None:
    handler.step = "finalize"
    job_id = await make_job(services)
    result = await JobRunner(services).execute(job_id)
    assert result.status == "succeeded"
    assert handler.finalized == 2  # the first recording transaction died; the second held
    job = await load(services, job_id)
    assert (job.status, job.result, job.error) == ("succeeded", {"ok": True}, None)
