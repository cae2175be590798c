"""Postgres is the record, Redis only the transport. Every few seconds:

- a running job whose worker stopped beating is failed-then-retried (``worker_lost``),
  or failed for good after its last attempt — never left `running`;
- a queued job that Redis does not hold (flushed, restarted, enqueue lost) is enqueued.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from app.db import transaction
from app.engine import metrics
from app.engine.context import Services
from app.engine.runner import emit_job_event
from app.jobs import queue
from app.jobs import repository as jobs
from app.models.base import utcnow
from app.models.kinds import JobStatus
from app.models.shapes import JobError

log = logging.getLogger(__name__)

WORKER_LOST = JobError(
    code="worker_lost",
    message="the worker running this job stopped (crashed or was killed)",
    hint="the job is retried on another worker",
)


async def reconcile(services: Services) -> dict[str, int]:
    settings = services.settings
    ts = utcnow()
    counts = {"requeued": 0, "failed": 0, "enqueued": 0}
    to_enqueue: list[uuid.UUID] = []
    failed: list[tuple[uuid.UUID, str, uuid.UUID | None, str]] = []
    async with transaction(services.sessionmaker) as session:
        stale_before = ts - timedelta(seconds=settings.job_stale_seconds)
        for job in await jobs.lock_stale(session, stale_before, limit=500):
            if job.attempt < job.max_attempts:
                await jobs.requeue_lost(session, job, WORKER_LOST)
                to_enqueue.append(job.id)
                counts["requeued"] += 1
            else:
                error = WORKER_LOST.model_copy(update={"hint": "the last attempt was lost too"})
                await jobs.fail_lost(session, job, error)
                handler = services.handlers.get(job.kind)
                if handler is not None:
                    await handler.failed(session, job, error)
                await emit_job_event(session, job, JobStatus.FAILED, None, error)
                failed.append((job.id, job.kind, job.pod_id, job.plan))
                counts["failed"] += 1
    for job_id, kind, pod_id, plan in failed:  # committed: now it is true
        metrics.JOBS_FINISHED.labels(kind, plan, JobStatus.FAILED).inc()
        log.warning(
            "job %s (%s) failed for pod %s (plan %s): %s, its last attempt's worker was lost",
            job_id,
            kind,
            pod_id,
            plan,
            WORKER_LOST.code,
        )

    for job_id in to_enqueue:
        await queue.forget(services.redis, settings.queue_name, job_id)
        await queue.enqueue(services.redis, settings.queue_name, job_id)

    async with services.sessionmaker() as session:
        queued = await jobs.queued_before(session, ts - timedelta(seconds=2), limit=2000)
    for job_id, run_after in queued:
        if not await queue.held(services.redis, job_id):
            if await queue.enqueue(services.redis, settings.queue_name, job_id, run_after):
                counts["enqueued"] += 1
    for action, n in counts.items():
        if n:
            metrics.RECONCILED.labels(action).inc(n)
            log.info("reconciler: %s %d job(s)", action, n)
    return counts
