"""Postgres is the record, Redis only the transport. Every few seconds:

- a running job whose worker stopped beating is failed-then-retried (``worker_lost``),
  or failed for good after its last attempt — never left `running`;
- a queued job that Redis does not hold (flushed, restarted, enqueue lost) is enqueued.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import or_, select

from app.engine import metrics, queue
from app.engine.context import Services
from app.engine.runner import emit_job_event
from app.jobs.kinds import JobStatus
from app.models import Job, JobEvent
from app.models.base import utcnow

log = logging.getLogger(__name__)

WORKER_LOST = {
    "code": "worker_lost",
    "message": "the worker running this job stopped (crashed or was killed)",
    "hint": "the job is retried on another worker",
}


async def reconcile(services: Services) -> dict[str, int]:
    settings = services.settings
    ts = utcnow()
    counts = {"requeued": 0, "failed": 0, "enqueued": 0}
    to_enqueue: list[uuid.UUID] = []
    async with services.sessionmaker() as session:
        stale = (
            await session.scalars(
                select(Job)
                .where(
                    Job.status == "running",
                    or_(
                        Job.heartbeat_at < ts - timedelta(seconds=settings.job_stale_seconds),
                        Job.heartbeat_at.is_(None),
                    ),
                )
                .with_for_update(skip_locked=True)
                .limit(500)
            )
        ).all()
        for job in stale:
            if job.attempt < job.max_attempts:
                job.status, job.attempt = JobStatus.QUEUED, job.attempt + 1
                job.worker_id, job.heartbeat_at, job.run_after = None, None, ts
                job.error = dict(WORKER_LOST)
                job.progress = {**(job.progress or {}), "phase": "waiting to retry"}
                session.add(
                    JobEvent(
                        job_id=job.id,
                        type="state",
                        at=ts,
                        data={"status": "queued", "attempt": job.attempt, "error": WORKER_LOST},
                    )
                )
                to_enqueue.append(job.id)
                counts["requeued"] += 1
            else:
                job.status, job.finished_at = JobStatus.FAILED, ts
                job.error = {**WORKER_LOST, "hint": "the last attempt was lost too"}
                job.progress = {**(job.progress or {}), "phase": "failed"}
                session.add(
                    JobEvent(
                        job_id=job.id,
                        type="state",
                        at=ts,
                        data={"status": "failed", "final": True, "error": job.error},
                    )
                )
                handler = services.handlers.get(job.kind)
                if handler is not None:
                    await handler.failed(session, job, job.error)
                await emit_job_event(session, job, "failed", None, job.error)
                counts["failed"] += 1
        await session.commit()

    for job_id in to_enqueue:
        await queue.forget(services.redis, settings.queue_name, job_id)
        await queue.enqueue(services.redis, settings.queue_name, job_id)

    async with services.sessionmaker() as session:
        queued = (
            await session.execute(
                select(Job.id, Job.run_after)
                .where(Job.status == "queued", Job.created_at < ts - timedelta(seconds=2))
                .order_by(Job.created_at)
                .limit(2000)
            )
        ).all()
    for job_id, run_after in queued:
        if not await queue.held(services.redis, job_id):
            if await queue.enqueue(services.redis, settings.queue_name, job_id, run_after):
                counts["enqueued"] += 1
    for action, n in counts.items():
        if n:
            metrics.RECONCILED.labels(action).inc(n)
            log.info("reconciler: %s %d job(s)", action, n)
    return counts
