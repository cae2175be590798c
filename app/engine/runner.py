"""Runs one job attempt in a worker: claim, heartbeat, handler, then the truth in Postgres.

A job ends in exactly one of: succeeded, partial, failed, canceled — or goes back to
queued for another attempt when its failure is retryable. The state change and the
handler's own writes (snapshots, pod status) commit in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from app.db import transaction
from app.engine import metrics
from app.engine.context import Handler, JobContext, JobOutcome, Services
from app.engine.errors import JobCanceled, JobFailure
from app.engine.transient import is_transient_db_error, lost_database, retrying
from app.jobs import repository as jobs
from app.kit import subprocess as sp
from app.models import Job
from app.models.kinds import JobStatus
from app.models.shapes import JobError
from app.webhooks.events import emit_for_job

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    status: str  # final status, "retry", or "skipped"
    retry_in: float | None = None


class JobRunner:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings

    async def execute(self, job_id: uuid.UUID) -> RunResult:
        job = await self._claim(job_id)
        if job is None:
            return RunResult("skipped")
        cancel = asyncio.Event()
        lost = asyncio.Event()
        ctx = JobContext(self.services, job, cancel)
        beat = asyncio.create_task(self._heartbeat(job.id, cancel, lost))
        started = time.monotonic()
        outcome: JobOutcome | None = None
        failure: JobFailure | None = None
        canceled = False
        handler = self.services.handlers.get(job.kind)
        try:
            if handler is None:
                raise JobFailure(
                    "unknown_kind", f"no handler for job kind {job.kind.value!r}", retryable=False
                )
            async with asyncio.timeout(self.settings.job_timeout_seconds):
                outcome = await self._run_cancellable(handler, ctx)
        except (JobCanceled, sp.Cancelled):
            canceled = True
        except JobFailure as exc:
            failure = exc
        except TimeoutError:
            failure = JobFailure(
                "timeout",
                f"the job ran longer than {self.settings.job_timeout_seconds}s",
                hint="a larger pod may need a longer PODBACKUP_JOB_TIMEOUT_SECONDS",
                retryable=False,
            )
        except asyncio.CancelledError:
            # The worker is shutting down: hand the job back untouched for another worker.
            beat.cancel()
            await self._release(job.id)
            raise
        except Exception as exc:
            if (coded := JobFailure.from_error(exc)) is not None:
                failure = coded
            elif is_transient_db_error(exc):
                failure = lost_database(job.id)
            else:
                log.exception("job %s failed unexpectedly", job.id)
                failure = JobFailure(
                    "internal",
                    f"unexpected error ({type(exc).__name__}); the event was logged",
                    retryable=False,
                )
        finally:
            beat.cancel()
        if lost.is_set():
            log.warning("job %s was taken away from this worker; not recording", job.id)
            return RunResult("skipped")
        if failure is not None and cancel.is_set() and failure.code in ("interrupted", "canceled"):
            canceled, failure = True, None
        if ctx._pending:
            await ctx.flush_progress()
        duration = time.monotonic() - started
        if canceled:
            return await self._finish(
                ctx,
                handler,
                JobStatus.CANCELED,
                None,
                JobError(code="canceled", message="canceled on request", hint=None),
                duration,
            )
        if failure is not None:
            if failure.retryable and job.attempt < job.max_attempts and not cancel.is_set():
                return await self._retry(ctx, failure)
            return await self._finish(
                ctx,
                handler,
                JobStatus.FAILED,
                None,
                failure.as_error(),
                duration,
            )
        assert outcome is not None
        return await self._finish(ctx, handler, outcome.status, outcome, None, duration)

    async def _run_cancellable(self, handler: Handler, ctx: JobContext) -> JobOutcome:
        """Run the handler; on cancel, let it stop on its own (child processes get SIGINT),
        and interrupt whatever it awaits (an HTTP hook, an SFTP read) after the grace period.
        """
        task = asyncio.create_task(handler.run(ctx))
        waiter = asyncio.create_task(ctx.cancel.wait())
        try:
            done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            try:
                return await asyncio.wait_for(
                    asyncio.shield(task), timeout=self.settings.job_cancel_grace_seconds + 1
                )
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise JobCanceled() from None
        except asyncio.CancelledError:
            task.cancel()  # the worker itself is shutting down: stop the handler too
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise
        finally:
            waiter.cancel()

    # -- state transitions ---------------------------------------------------------------

    async def _claim(self, job_id: uuid.UUID) -> Job | None:
        async with transaction(self.services.sessionmaker) as session:
            return await jobs.claim(session, job_id, self.services.worker_id)

    async def _release(self, job_id: uuid.UUID) -> None:
        try:
            async with transaction(self.services.sessionmaker) as session:
                await jobs.release(session, job_id, self.services.worker_id)
        except Exception:
            log.warning("could not hand job %s back; the reconciler will", job_id)

    async def _heartbeat(
        self, job_id: uuid.UUID, cancel: asyncio.Event, lost: asyncio.Event
    ) -> None:
        failing_since: float | None = None
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_seconds)
            try:
                async with transaction(self.services.sessionmaker) as session:
                    cancel_requested = await jobs.heartbeat(
                        session, job_id, self.services.worker_id
                    )
                failing_since = None
            except Exception:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > self.settings.job_stale_seconds * 0.8:
                    log.warning("job %s: cannot reach the database to beat; stopping", job_id)
                    lost.set()
                    cancel.set()
                    return
                continue
            if cancel_requested is None:  # deleted with its pod, or taken over by the reconciler
                lost.set()
                cancel.set()
                return
            if cancel_requested:
                cancel.set()

    async def _retry(self, ctx: JobContext, failure: JobFailure) -> RunResult:
        return await retrying(f"job {ctx.job.id}", lambda: self._retry_once(ctx, failure))

    async def _retry_once(self, ctx: JobContext, failure: JobFailure) -> RunResult:
        job = ctx.job
        delay = self.settings.job_retry_base_seconds * (2 ** (job.attempt - 1))
        async with transaction(self.services.sessionmaker) as session:
            requeued = await jobs.requeue(
                session,
                job,
                self.services.worker_id,
                error=failure.as_error(),
                delay=delay,
                progress=ctx.current_progress,
            )
        if not requeued:
            return RunResult("skipped")
        metrics.JOB_RETRIES.labels(job.kind, failure.code).inc()
        log.info("job %s: %s; retry %d in %.0fs", job.id, failure.code, job.attempt + 1, delay)
        return RunResult("retry", retry_in=delay)

    async def _finish(
        self,
        ctx: JobContext,
        handler: Handler | None,
        status: JobStatus,
        outcome: JobOutcome | None,
        error: JobError | None,
        duration: float,
    ) -> RunResult:
        """Record the end, again after a dropped connection (guarded: never twice)."""
        return await retrying(
            f"job {ctx.job.id}",
            lambda: self._finish_once(ctx, handler, status, outcome, error, duration),
        )

    async def _finish_once(
        self,
        ctx: JobContext,
        handler: Handler | None,
        status: JobStatus,
        outcome: JobOutcome | None,
        error: JobError | None,
        duration: float,
    ) -> RunResult:
        job = ctx.job
        end: dict[str, Any] = {"phase": status.value}
        if status in (JobStatus.SUCCEEDED, JobStatus.PARTIAL):
            end["percent"] = 100.0
        progress = ctx.current_progress.model_copy(update=end)
        result = outcome.result if outcome else None
        async with transaction(self.services.sessionmaker) as session:
            at = await jobs.finish(
                session,
                job.id,
                self.services.worker_id,
                status,
                result=result,
                error=error,
                progress=progress,
            )
            if at is None:  # not this worker's job any more: nothing was written
                return RunResult("skipped")
            if outcome is not None and outcome.finalize is not None:
                await outcome.finalize(session)
            elif error is not None and handler is not None:
                await handler.failed(session, job, error)
            await jobs.finished_event(session, job.id, status, result=result, error=error, at=at)
            await emit_job_event(session, job, status, outcome, error)
        # committed, then the follow-up jobs the handler created are enqueued
        metrics.JOBS_FINISHED.labels(job.kind, job.plan, status).inc()
        metrics.JOB_SECONDS.labels(job.kind).observe(duration)
        if status == JobStatus.FAILED and error is not None:
            # The code, not the message: the message quotes the pod's own systems' answers.
            log.warning(
                "job %s (%s) failed for pod %s (plan %s): %s after %.1fs, attempt %d",
                job.id,
                job.kind,
                job.pod_id,
                job.plan,
                error.code,
                duration,
                job.attempt,
            )
        else:
            log.info("job %s (%s) %s in %.1fs", job.id, job.kind, status, duration)
        return RunResult(status.value)


async def emit_job_event(
    session: Any,
    job: Job,
    status: str,
    outcome: JobOutcome | None,
    error: JobError | None,
) -> None:
    """Queue webhook deliveries for the job's final state (no-op without webhooks)."""
    await emit_for_job(session, job, status, outcome.result if outcome else None, error)
