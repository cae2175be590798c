"""What the runner logs when a job ends: a failure at WARNING with its pod and error code."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.engine import metrics
from app.engine.context import Services
from app.engine.reconcile import reconcile
from app.engine.runner import JobRunner
from app.jobs import queue, service
from app.models import Account, Job, Pod
from app.models.base import utcnow
from app.models.kinds import JobKind


async def _job_for_pod_without_settings(services: Services) -> tuple[uuid.UUID, uuid.UUID]:
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
        return job.id, pod.id


async def test_failed_job_is_logged_at_warning_with_pod_and_code(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    # The real refresh handler, on a pod that has no backup target: a coded failure.
    job_id, pod_id = await _job_for_pod_without_settings(services)
    with caplog.at_level(logging.INFO, logger="app.engine.runner"):
        result = await JobRunner(services).execute(job_id)
    assert result.status == "failed"
    async with services.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        assert job.error is not None
        code = job.error.code
    ends = [r for r in caplog.records if r.name == "app.engine.runner" and str(job_id) in r.message]
    assert [r.levelno for r in ends] == [logging.WARNING], [r.message for r in ends]
    assert str(pod_id) in ends[0].message
    assert f": {code} after" in ends[0].message


async def test_job_failed_by_the_reconciler_is_logged_and_counted(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, pod_id = await _job_for_pod_without_settings(services)
    stale = utcnow() - timedelta(seconds=services.settings.job_stale_seconds + 5)
    async with services.sessionmaker() as session:  # its last attempt's worker died
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="running", worker_id="dead:1", heartbeat_at=stale, attempt=3)
        )
        await session.commit()
    counter = metrics.JOBS_FINISHED.labels("refresh", "owner", "failed")
    before = counter._value.get()
    with caplog.at_level(logging.INFO, logger="app.engine.reconcile"):
        counts = await reconcile(services)
    assert counts["failed"] == 1
    assert counter._value.get() == before + 1
    lines = [r for r in caplog.records if str(job_id) in r.message]
    assert [r.levelno for r in lines] == [logging.WARNING]
    assert str(pod_id) in lines[0].message
    assert "worker_lost" in lines[0].message
    await queue.forget(services.redis, services.settings.queue_name, job_id)
