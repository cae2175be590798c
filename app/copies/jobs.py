"""Job kind `copy`: `restic copy` from the owner's repository into the second copy (only the
snapshots not there yet: restic recognises copied ones by their ``original``), then the
copy's snapshot table follows the copy repository (as a refresh of plan ``copy``), and —
when due by the copy's own settings — a check and a prune of the copy are queued.

The copy repository is created on the first run with the primary's chunker parameters
(``init --copy-chunker-params``) so deduplication holds across the copy.

The copy may use another S3 key (another provider) than the primary: restic reads the
primary through the re-signing gateway then (``Restic.source_env``,
``integrations.s3.gateway``), for both ``init`` and ``copy``; a primary at an address the
outbound policy refuses fails the job with ``address_refused``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.engine.context import JobContext, JobOutcome
from app.engine.errors import JobFailure
from app.engine.locks import repository_lock
from app.jobs import service as jobs
from app.jobs.errors import PodBusy
from app.models import CopySettings, Job, Pod
from app.models.kinds import JobKind, JobStatus, Plan
from app.models.shapes import JobError
from app.plans import repository as plan_states
from app.plans import targets
from app.snapshots import repository as snapshots
from app.snapshots.jobs import sync_plan_state


async def _load(ctx: JobContext) -> tuple[Pod, targets.Target]:
    async with ctx.session() as session:
        pod = await session.get(Pod, ctx.job.pod_id)
        if pod is None:
            raise JobFailure("pod_deleted", "the pod was deleted", retryable=False)
        target = await targets.resolve(session, ctx.settings, ctx.services.keyring, pod, Plan.COPY)
    assert target.source is not None
    ctx.secret(*target.repo.secret_values(), *target.source.secret_values())
    return pod, target


class CopyHandler:
    async def run(self, ctx: JobContext) -> JobOutcome:
        pod, target = await _load(ctx)
        source = target.source
        assert source is not None
        restic = ctx.services.restic
        access = targets.RepoAccess(
            transaction=ctx.transaction,
            restic=restic,
            cancel=ctx.cancel,
            exclusive=lambda key: repository_lock(ctx.services.engine, key, cancel=ctx.cancel),
        )

        async def _waiting() -> None:
            await ctx.phase("waiting for the repository lock")

        async with repository_lock(
            ctx.services.engine, target.repo.lock_key, cancel=ctx.cancel, on_wait=_waiting
        ):
            await ctx.phase("opening the copy")
            repository_id = await target.ensure(access)
            await ctx.phase("copying", percent=0.0)
            lines = await restic.copy(target.repo, source, cancel=ctx.cancel)
            await ctx.phase("listing the copy's snapshots")
            listed = await restic.snapshots(target.repo, cancel=ctx.cancel)
        copied = sum(
            1 for line in lines if line.strip().startswith("snapshot ") and "saved" in line
        )
        result: dict[str, Any] = {
            "repository_id": repository_id,
            "copied": copied,
            "snapshots": len(listed),
        }
        job = ctx.job
        redis, settings = ctx.services.redis, ctx.settings

        async def finalize(session: AsyncSession) -> None:
            listed_ids = {s["id"] for s in listed}
            known = await snapshots.ids(session, pod.id, Plan.COPY)
            for snap in listed:
                if snap["id"] not in known:
                    await snapshots.upsert(session, pod_id=pod.id, plan=Plan.COPY, snap=snap)
            await snapshots.delete_ids(session, pod.id, Plan.COPY, sorted(known - listed_ids))
            await sync_plan_state(session, pod.id, Plan.COPY)
            now = datetime.now(UTC)
            await plan_states.upsert(
                session,
                pod.id,
                Plan.COPY,
                last_attempt_at=now,
                last_status=JobStatus.SUCCEEDED.value,
                last_job_id=job.id,
                last_success_at=now,
                stale_alerted_at=None,
            )
            await _queue_due(session, redis, settings, pod, now)

        return JobOutcome(result=result, finalize=finalize)

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        if job.pod_id is None:
            return
        await plan_states.upsert(
            session,
            job.pod_id,
            Plan.COPY,
            last_attempt_at=datetime.now(UTC),
            last_status="canceled" if error.code == "canceled" else "failed",
            last_job_id=job.id,
        )


async def _queue_due(
    session: AsyncSession, redis: ArqRedis, settings: Settings, pod: Pod, now: datetime
) -> None:
    """The copy's own check and retention, on its settings' intervals: the copy has no
    schedule of its own, so each successful copy queues what is due (one at a time: the
    next copy queues the other)."""
    row = await session.get(CopySettings, pod.id)
    if row is None:
        return
    state = await plan_states.get(session, pod.id, Plan.COPY)
    last_check = (state.last_verification or {}).get("at") if state else None
    check_due = row.verification.enabled and (
        last_check is None
        or datetime.fromisoformat(last_check) < now - timedelta(days=row.verification.interval_days)
    )
    prune_due = row.pruned_at is None or row.pruned_at < now - timedelta(
        days=row.retention.prune_interval_days
    )
    kind = JobKind.CHECK if check_due else JobKind.PRUNE if prune_due else None
    if kind is None:
        return
    with contextlib.suppress(PodBusy):  # another job came first: the next copy queues it
        await jobs.create(
            session,
            redis,
            settings,
            kind=kind,
            pod_id=pod.id,
            account_id=pod.account_id,
            trigger="schedule",
            plan=Plan.COPY,
        )
