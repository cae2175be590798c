"""Job kind `prune`: forget by the pod's policy, then `restic prune`, under the repository
lock; the snapshots table and the repository size follow in the finishing transaction.

The plan is the preview's (``service.compute``: a dry run, the newest successful snapshot
and the pinned ones taken out of the remove list) and only its ids are forgotten
(``restic forget <ids>``), so restic cannot decide anything at prune time that the
preview did not show.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.context import JobContext, JobOutcome
from app.engine.errors import JobFailure
from app.engine.locks import repository_lock
from app.models import BackupSettings, CopySettings, Job, Pod
from app.models.base import utcnow
from app.models.kinds import Plan
from app.models.settings import TargetRow
from app.models.shapes import JobError
from app.plans import targets
from app.platform import maintenance
from app.retention import service
from app.snapshots import repository as snapshots
from app.snapshots.jobs import sync_plan_state
from app.storage import jobs as storage_jobs
from app.storage import service as storage
from app.targets.repository import maintenance_repository
from app.targets.resolve import stored_target


async def _load(ctx: JobContext) -> tuple[Pod, targets.Target, dict[str, int], bool]:
    """The pod, its target, the policy, and whether a repository exists yet."""
    plan = ctx.job.plan
    async with ctx.session() as session:
        pod = await session.get(Pod, ctx.job.pod_id)
        if pod is None:
            raise JobFailure("pod_deleted", "the pod was deleted", retryable=False)
        try:
            policy = await service.stored_policy(session, ctx.settings, pod.id, plan)
        except service.PolicyMissing:
            raise JobFailure(
                "not_configured",
                "the pod has no backup settings",
                hint="set a target and retention with PUT /v1/pods/{pod_id}/backup-settings",
                retryable=False,
            ) from None
        except ValueError as exc:
            raise JobFailure(
                "bad_policy",
                str(exc),
                hint="set at least one keep rule in the pod's retention settings",
                retryable=False,
            ) from None
        exists = True
        row: TargetRow | None = None
        if plan in (Plan.OWNER, Plan.COPY):
            row = (
                await session.get(CopySettings, pod.id)
                if plan == Plan.COPY
                else await session.get(BackupSettings, pod.id)
            )
            exists = row is not None and row.repository_id is not None
        target = await targets.resolve(session, ctx.settings, ctx.services.keyring, pod, plan)
    ctx.secret(*target.repo.secret_values())
    if isinstance(row, BackupSettings):  # lock mode is a setting of the owner's target
        target = await _lock_mode(ctx, row, target)
    return pod, target, policy, exists


async def _lock_mode(
    ctx: JobContext, row: BackupSettings, target: targets.Target
) -> targets.Target:
    """In lock mode the backup key cannot delete: forget and prune run with the maintenance
    key, or not at all (refused before restic starts, rather than restic failing half-way
    or, worse, reporting snapshots forgotten that the bucket kept)."""
    resolved = stored_target(ctx.services.keyring, row)
    if not resolved.lock_days:
        return target
    repo = maintenance_repository(target.repo, resolved)
    if repo is None:
        raise JobFailure(
            "maintenance_key_missing",
            f"the target is in lock mode ({resolved.lock_days} day(s)) and has no maintenance "
            "key: the backup key cannot delete, so nothing was forgotten or pruned",
            hint="add target.immutable.maintenance_key (a key that may delete) with PUT "
            "/v1/pods/{pod_id}/backup-settings; GET /v1/providers shows its policy",
            retryable=False,
        )
    ctx.secret(*repo.secret_values())
    await ctx.log(
        f"lock mode: forget and prune use the maintenance key "
        f"{repo.env['AWS_ACCESS_KEY_ID']}, not the backup key"
    )
    return replace(target, repo=repo)


class PruneHandler:
    async def run(self, ctx: JobContext) -> JobOutcome:
        pod, target, policy, exists = await _load(ctx)
        plan_name = ctx.job.plan
        if not exists:
            return JobOutcome(
                result={"policy": policy, "removed": 0, "kept": 0, "skipped": "no repository yet"}
            )
        restic = ctx.services.restic

        async def _waiting() -> None:
            await ctx.phase("waiting for the repository lock")

        async with repository_lock(
            ctx.services.engine, target.repo.lock_key, cancel=ctx.cancel, on_wait=_waiting
        ):
            await ctx.phase("planning")
            async with ctx.session() as session:
                recorded = await service.known(session, pod.id, plan_name)
            host, tag = service.scope(pod.id)
            groups = await service.dry_run(
                restic, target.repo, policy, host, tag, cancel=ctx.cancel
            )
            plan = service.assemble(groups, policy, pod.id, recorded)
            ctx.check_cancel()
            # A pin set while restic planned (seconds) still counts: read them once more.
            async with ctx.session() as session:
                pinned = await snapshots.pinned_ids(session, pod.id, plan_name)
            removed = [i for i in plan.remove_ids if i not in pinned]
            # Kept, and said so, like the pins the plan already knew.
            late_pins = [i for i in plan.remove_ids if i in pinned]
            pruned: list[str] = []
            if removed:
                await ctx.phase("forgetting", files_total=len(removed))
                await ctx.log(f"forgetting {len(removed)} snapshot(s): {', '.join(removed)}")
                await restic.forget_ids(target.repo, removed, cancel=ctx.cancel)
                # restic exits 0 even when the storage refused a delete ("unable to remove
                # snapshot/…"): what is still listed was not forgotten.
                listed = await restic.snapshots(target.repo, host=host, tags=[tag])
                kept = set(removed) & {str(s.get("id")) for s in listed}
                gone = [i for i in removed if i not in kept]
                # They are gone from the repository now: the table follows at once, so a
                # failed or canceled prune below cannot leave rows of forgotten snapshots.
                await _reconcile(ctx, pod.id, plan_name, gone)
                if kept:
                    raise JobFailure(
                        "forget_refused",
                        f"restic reported {len(removed)} snapshot(s) forgotten, but the "
                        f"storage kept {len(kept)} of them: the key may not delete there",
                        hint="give the key that prunes (in lock mode the maintenance key) "
                        "delete access to the bucket's objects; GET /v1/providers shows "
                        "the policy",
                        retryable=False,
                    )
            # A retry after a failed prune finds nothing left to forget but must still prune.
            want_prune = bool(removed) or ctx.job.attempt > 1
            if want_prune and target.shared_by_pods:
                want_prune = await _repository_turn(ctx, target)
            if want_prune:
                await ctx.phase("pruning")
                pruned = await restic.prune(target.repo, cancel=ctx.cancel)
            elif removed:
                await ctx.log("shared repository: pruned repository-wide once per interval")
            else:
                await ctx.log("nothing to forget: prune skipped (it would free nothing)")
            await ctx.phase("measuring repository size")
            size = await storage_jobs.measure(ctx, target.repo)

        result: dict[str, Any] = {
            "policy": policy,
            "kept": len(plan.keep) + len(late_pins),
            "removed": len(removed),
            "removed_ids": removed,
            "protected_snapshot_id": plan.protected,
            "kept_because_pinned": [k.id for k in plan.kept_because_pinned] + late_pins,
            "untouched": len(plan.untouched),
            "pruned": bool(pruned),
            "prune_output": [ln for ln in pruned if ln.strip()][-20:],
            "repository_size_bytes": size,
        }

        async def finalize(session: AsyncSession) -> None:
            if size is not None:
                await storage.record_size(session, pod.id, plan_name, size, ctx.settings)
            if plan_name == Plan.COPY and (copy := await session.get(CopySettings, pod.id)):
                copy.pruned_at = utcnow()  # the copy job queues the next one when due

        return JobOutcome(result=result, finalize=finalize)

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        return None


async def _repository_turn(ctx: JobContext, target: targets.Target) -> bool:
    """A repository many pods share is pruned once per interval, by whichever pod's job
    comes first; the others only forget their own snapshots."""
    interval = timedelta(days=ctx.settings.platform_prune_interval_days)
    async with ctx.transaction() as session:
        mine = await maintenance.claim(session, target.repo.lock_key, "prune", interval)
    return mine


async def _reconcile(ctx: JobContext, pod_id: uuid.UUID, plan: str, removed: list[str]) -> None:
    async with ctx.transaction() as session:
        await snapshots.delete_ids(session, pod_id, plan, removed)
        await sync_plan_state(session, pod_id, plan)
