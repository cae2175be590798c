"""Job kinds `index` (browse index of one snapshot) and `refresh` (re-read the repository)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import commit
from app.engine.context import JobContext, JobOutcome
from app.engine.errors import JobFailure
from app.models import Job, Pod, Snapshot
from app.models.kinds import Plan
from app.models.shapes import JobError
from app.plans import repository as plan_states
from app.plans import targets
from app.snapshots import index
from app.snapshots import repository as snapshots
from app.snapshots.service import request_index
from app.storage import jobs as storage_jobs


async def _pod_and_target(ctx: JobContext) -> tuple[Pod, targets.Target]:
    async with ctx.session() as session:
        pod = await session.get(Pod, ctx.job.pod_id)
        if pod is None:
            raise JobFailure("pod_deleted", "the pod was deleted", retryable=False)
        target = await targets.resolve(
            session, ctx.settings, ctx.services.keyring, pod, ctx.job.plan
        )
    ctx.secret(*target.repo.secret_values())
    return pod, target


class IndexHandler:
    async def run(self, ctx: JobContext) -> JobOutcome:
        pod, target = await _pod_and_target(ctx)
        snapshot_id = ctx.job.params.snapshot_id or ""
        await ctx.phase("indexing")
        async with ctx.session() as session:
            snap = await snapshots.find(session, pod.id, ctx.job.plan, snapshot_id)
            if snap is None:
                raise JobFailure(
                    "snapshot_not_found",
                    f"snapshot {snapshot_id} is not recorded",
                    hint="refresh the snapshot list",
                    retryable=False,
                )
            if snap.index_status == "ready" and ctx.job.params.measure:
                # Indexed with the backup (an unchanged snapshot has its parent's index):
                # this job only measures the repository.
                count = int(snap.file_count or 0)
            else:
                count = await self._build(ctx, session, target, snap)
        result: dict[str, Any] = {"snapshot_id": snap.id, "files": count}
        if ctx.job.params.measure:
            # Growth and cost: measured right after each backup; a failure here is logged
            # by `measure` and never fails the index.
            return await storage_jobs.with_size(ctx, target.repo, JobOutcome(result=result))
        return JobOutcome(result=result)

    async def _build(
        self, ctx: JobContext, session: AsyncSession, target: targets.Target, snap: Snapshot
    ) -> int:
        await snapshots.set_index_status(session, snap.pk, "indexing")
        await commit(session)
        try:
            count = await index.build(
                session, ctx.services.restic, target.repo, snap, cancel=ctx.cancel
            )
            await commit(session)
        except BaseException:
            await session.rollback()
            await snapshots.set_index_status(session, snap.pk, "failed")
            await commit(session)
            raise
        return count

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        return None


class RefreshHandler:
    """Make the table match the repository: add snapshots made outside the service (e.g. by
    the owner with plain restic), drop those that were forgotten."""

    async def run(self, ctx: JobContext) -> JobOutcome:
        pod, target = await _pod_and_target(ctx)
        await ctx.phase("listing snapshots")
        plan = ctx.job.plan
        # The owner's bucket holds one pod; a shared platform repository is split by host.
        host = str(pod.id) if plan == Plan.PLATFORM else None
        listed = await ctx.services.restic.snapshots(target.repo, host=host, cancel=ctx.cancel)
        listed_ids = {s["id"] for s in listed}
        async with ctx.session() as session:
            before = await snapshots.ids(session, pod.id, plan)
        result: dict[str, Any] = {
            "snapshots": len(listed),
            "added": len(listed_ids - before),
            "removed": len(before - listed_ids),
        }

        async def finalize(session: AsyncSession) -> None:
            known = await snapshots.ids(session, pod.id, plan)
            for snap in listed:
                if snap["id"] not in known:
                    await snapshots.upsert(session, pod_id=pod.id, plan=plan, snap=snap)
            await snapshots.delete_ids(session, pod.id, plan, sorted(known - listed_ids))
            await sync_plan_state(session, pod.id, plan)
            newest = await snapshots.latest(session, pod.id, plan)
            if newest is not None and newest.index_status in ("none", "failed"):
                await request_index(session, ctx.services.redis, ctx.settings, pod, plan, newest.id)

        return JobOutcome(result=result, finalize=finalize)

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        return None


async def sync_plan_state(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, newest: str | None = None
) -> None:
    """Snapshot count and the parent for the next backup follow the table."""
    count = await plan_states.snapshot_count(session, pod_id, plan)
    state = await plan_states.get(session, pod_id, plan)
    values: dict[str, Any] = {"snapshot_count": count}
    if newest is not None:
        values["last_snapshot_id"] = newest
    elif state is not None and state.last_snapshot_id:
        if not await snapshots.has(session, pod_id, plan, state.last_snapshot_id):
            latest = await snapshots.latest(session, pod_id, plan)
            values["last_snapshot_id"] = latest.id if latest else None
    await plan_states.upsert(session, pod_id, plan, **values)
