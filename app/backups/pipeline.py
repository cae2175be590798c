"""The backup job: stop hook → files → database dump → start hook → restic backup →
evidence (the snapshot confirmed in the repository) → snapshot row and pod status, in the
transaction that finishes the job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.copies.service import queue_copy
from app.engine import metrics
from app.engine.context import JobContext, JobOutcome
from app.engine.errors import JobFailure
from app.engine.locks import repository_lock
from app.integrations.restic import ResticError
from app.integrations.restic.commands import BackupOutcome
from app.kit.cachedir import private_dirs
from app.kit.netpolicy import Policy
from app.models import Job, Pod, Snapshot
from app.models.kinds import JobStatus, Plan
from app.models.shapes import JobError, LocalFiles
from app.plans import repository as plan_states
from app.plans import targets
from app.podio.hooks import pod_stopped
from app.podio.stage import Staged, stage_database, stage_dir, stage_files
from app.pods.repository import pin_host_key
from app.pods.service import PodSecrets, decrypt_secrets
from app.snapshots import index
from app.snapshots import repository as snapshots
from app.snapshots.service import request_index
from app.storage.service import size_due
from app.watch import service as watch

log = logging.getLogger(__name__)

PROGRESS_ENV = {"RESTIC_PROGRESS_FPS": "2"}


async def _load(ctx: JobContext) -> tuple[Pod, PodSecrets, targets.Target]:
    async with ctx.session() as session:
        pod = await session.get(Pod, ctx.job.pod_id)
        if pod is None:
            raise JobFailure("pod_deleted", "the pod was deleted", retryable=False)
        secrets = decrypt_secrets(ctx.services.keyring, pod)
        target = await targets.resolve(
            session, ctx.settings, ctx.services.keyring, pod, ctx.job.plan
        )
    ctx.secret(*secrets.values(), *target.repo.secret_values())
    if not pod.files and not pod.database:
        raise JobFailure(
            "nothing_to_back_up",
            "the pod has neither a file source nor a database",
            hint="add the pod's SFTP access or database in its settings",
            retryable=False,
        )
    return pod, secrets, target


@dataclass
class BackupRun:
    staged: Staged
    backup: BackupOutcome
    repository_id: str | None
    parent: str | None = None  # the snapshot restic compared with (the pod's last)


async def run_backup(
    ctx: JobContext,
    pod: Pod,
    secrets: PodSecrets,
    target: targets.Target,
    *,
    extra_tags: Sequence[str] = (),
) -> BackupRun:
    """Stage the pod and make one snapshot of it (used by backups and safety backups)."""
    settings = ctx.settings
    policy = Policy.from_settings(settings)
    stage = private_dirs(settings.cache_dir, stage_dir(settings.cache_dir, pod.id, ctx.job.plan))
    async with ctx.session() as session:
        parent = await plan_states.last_snapshot_id(session, pod.id, ctx.job.plan)
    access = targets.RepoAccess(
        transaction=ctx.transaction,
        restic=ctx.services.restic,
        cancel=ctx.cancel,
        exclusive=lambda key: repository_lock(ctx.services.engine, key, cancel=ctx.cancel),
    )

    async def _waiting() -> None:
        await ctx.phase("waiting for the repository lock")

    async with repository_lock(
        ctx.services.engine,
        target.repo.lock_key,
        cancel=ctx.cancel,
        on_wait=_waiting,
        shared=target.shared_by_pods,
    ):
        repository_id: str | None = target.recorded_id
        # restic loads the parent (the pod's last snapshot, by its full id) with the
        # repository's key before it reads a file, and fails without it: a backup that
        # succeeds with that parent ran in the pod's own repository. No other restic start
        # (~0.7 s of key derivation each) is needed to check it; only a failed backup asks
        # `ensure`, whose answer ("gone", "another repository") is the clearer one.
        explain = parent is not None and len(parent) == 64 and target.parent_proves
        # Otherwise `ensure` runs beside staging. A repository on record is only checked:
        # that goes on beside the backup too; a failed check still fails the job and its
        # snapshot is never recorded, its error being the clearer one. Without one on
        # record `ensure` may `init` (~2-3 s of key calibration), which the backup waits for.
        check: asyncio.Future[str | None] | None = (
            None if explain else asyncio.ensure_future(target.ensure(access))
        )
        init_first = check is not None and not target.recorded
        if check is not None:
            await ctx.phase("opening repository")
        # A local source is staged as hard links to the live files: keep the pod stopped
        # until restic has read them. An SFTP mirror is a copy: the pod may start again.
        hold_through_upload = isinstance(pod.files, LocalFiles)
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(pod_stopped(ctx, pod, policy))
                staged = await stage_files(ctx, pod, secrets, stage, policy)
                await stage_database(ctx, pod, secrets, stage, policy, staged)
                if not hold_through_upload:
                    await stack.aclose()
                if init_first:
                    assert check is not None
                    repository_id = await check
                await ctx.phase("uploading", percent=0.0)
                backup = await ctx.services.restic.backup(
                    target.repo,
                    staged.paths,
                    cwd=stage,
                    host=str(pod.id),
                    tags=[*backup_tags(pod, ctx.job), *extra_tags],
                    parent=parent,
                    on_status=lambda m: _on_status(ctx, m),
                    cancel=ctx.cancel,
                    policy=policy,
                    # restic prints 60 status lines a second with --json; the job writes
                    # progress about once a second: parse 2.
                    extra_env=PROGRESS_ENV,
                )
        except BaseException as exc:
            if check is not None:
                await _settle(ctx, check, exc)
            elif explain and _may_be_another_repository(ctx, exc):
                await target.ensure(access)  # raises what is wrong with the repository
            raise
        if check is not None and not init_first:
            repository_id = await check
    return BackupRun(staged=staged, backup=backup, repository_id=repository_id, parent=parent)


def _may_be_another_repository(ctx: JobContext, exc: BaseException) -> bool:
    """restic failed in a way a missing or replaced repository would explain."""
    return (
        isinstance(exc, ResticError)
        and exc.code in ("repository_not_found", "wrong_password", "repository_damaged", "failed")
        and not ctx.cancel.is_set()
    )


async def _index_from_parent(session: AsyncSession, run: BackupRun, row: Snapshot) -> bool:
    """An unchanged snapshot (its parent's tree, by restic's summary) gets the parent's
    browse index copied in SQL, in the transaction that records it: no `restic ls`.
    Needs restic's own time of the snapshot (``backup_start``, restic 0.17+): with 0.14
    the index job reads it from `restic ls`."""
    start = run.backup.summary.get("backup_start")
    if not run.parent or not isinstance(start, str):
        return False
    parent = await snapshots.find(session, row.pod_id, row.plan, run.parent)
    if not index.same_tree_as_parent(run.backup.summary, run.staged.paths, parent):
        return False
    assert parent is not None
    await index.copy_parent(session, row, parent, snapshots.parse_time(start))
    return True


async def _settle(ctx: JobContext, check: asyncio.Future[str | None], exc: BaseException) -> None:
    """The backup failed while the repository check ran beside it: a canceled job stops
    the check; otherwise its own failure (repository gone or replaced), the clearer
    explanation, is raised in place of the backup's."""
    if ctx.cancel.is_set() or isinstance(exc, asyncio.CancelledError):
        check.cancel()
    await asyncio.wait({check})
    if not check.cancelled() and (problem := check.exception()) is not None:
        raise problem


async def _pin_if_asked(
    session: AsyncSession, job: Job, row: Snapshot, status: str, now: datetime
) -> None:
    """A backup asked to pin its snapshot (the one before an app update) pins it in the
    transaction that records it, only when it succeeded: a partial snapshot is no rollback
    point. Here, not in the request that waits for it: a request that gave up waiting
    (or whose client went away) still leaves the snapshot pinned."""
    params = job.params
    if not params.pin or status != JobStatus.SUCCEEDED:
        return
    until = now + timedelta(days=params.pin_days) if params.pin_days else None
    await snapshots.pin(session, row.pk, until=until, note=params.pin_note, by=job.trigger)


def backup_tags(pod: Pod, job: Job) -> list[str]:
    return [
        f"pod:{pod.id}",
        f"app:{pod.app}",
        f"plan:{job.plan}",
        f"trigger:{job.trigger}",
        f"job:{job.id}",
    ]


async def _on_status(ctx: JobContext, message: dict[str, Any]) -> None:
    if message.get("message_type") != "status":
        return
    fraction = float(message.get("percent_done") or 0.0)
    await ctx.progress(
        phase="uploading",
        percent=round(fraction * 100, 1),
        bytes_done=message.get("bytes_done"),
        bytes_total=message.get("total_bytes"),
        files_done=message.get("files_done"),
        files_total=message.get("total_files"),
        seconds_remaining=message.get("seconds_remaining"),
    )


class BackupHandler:
    async def run(self, ctx: JobContext) -> JobOutcome:
        pod, secrets, target = await _load(ctx)
        run = await run_backup(ctx, pod, secrets, target, extra_tags=ctx.job.params.tags or ())
        # The browse index (unless copied from the parent) and the repository's size (when
        # due) come from a follow-up index job: a backup ends once its snapshot is confirmed.
        return self._outcome(ctx, pod, run)

    def _outcome(self, ctx: JobContext, pod: Pod, run: BackupRun) -> JobOutcome:
        staged, backup, repository_id = run.staged, run.backup, run.repository_id
        unreadable = staged.unreadable + [
            u for u in backup.unreadable if u["path"] not in {x["path"] for x in staged.unreadable}
        ]
        status = JobStatus.PARTIAL if unreadable else JobStatus.SUCCEEDED
        result = {
            "snapshot_id": backup.snapshot_id,
            "short_id": backup.short_id,
            "repository_id": repository_id,
            "summary": backup.summary,
            "files": staged.files,
            "database": staged.database,
            "unreadable": unreadable[:1000],
            "unreadable_count": len(unreadable),
        }
        job = ctx.job
        metrics.BACKUP_BYTES_ADDED.labels(job.plan).inc(int(backup.summary.get("data_added") or 0))
        if staged.files and staged.files.get("bytes_downloaded"):
            metrics.BACKUP_FILES_BYTES.inc(int(staged.files["bytes_downloaded"]))

        async def finalize(session: AsyncSession) -> None:
            snap_summary = {
                **backup.summary,
                "files": staged.files,
                "database": staged.database,
                "unreadable": unreadable[:100],  # what this snapshot lacks, as the job says
                "unreadable_count": len(unreadable),
                "status": status,
            }
            assert backup.snapshot is not None
            row = await snapshots.upsert(
                session,
                pod_id=pod.id,
                plan=job.plan,
                snap=backup.snapshot,
                job_id=job.id,
                summary=snap_summary,
            )
            now = datetime.now(UTC)
            values: dict[str, Any] = {
                "last_attempt_at": now,
                "last_status": status,
                "last_job_id": job.id,
                "last_snapshot_id": backup.snapshot_id,
                "snapshot_count": await plan_states.snapshot_count(session, pod.id, job.plan),
            }
            if status == "succeeded":
                values["last_success_at"] = now
                values["stale_alerted_at"] = None
            await plan_states.upsert(session, pod.id, job.plan, **values)
            # A snapshot was written: the target works, whatever the last probe said.
            await watch.mark_available(session, pod.id, pod.account_id, job.plan, now)
            if staged.seen_host_key:
                await pin_host_key(session, pod.id, staged.seen_host_key)
            await _pin_if_asked(session, job, row, status, now)
            if job.plan == Plan.OWNER:
                # The second copy follows each backup (the backup is finished by now, so
                # the copy may take the pod's one exclusive slot).
                await queue_copy(session, ctx.services.redis, ctx.settings, pod, "schedule")
            state = await plan_states.get(session, pod.id, job.plan)
            measure = size_due(backup.summary, state.repo_size_at if state else None, now)
            if await _index_from_parent(session, run, row):
                if not measure:
                    return  # indexed, and the repository's size is what was measured
            await request_index(
                session,
                ctx.services.redis,
                ctx.settings,
                pod,
                job.plan,
                backup.snapshot_id,
                measure=measure,
            )

        return JobOutcome(status=status, result=result, finalize=finalize)

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        if job.pod_id is None:
            return
        await plan_states.upsert(
            session,
            job.pod_id,
            job.plan,
            last_attempt_at=datetime.now(UTC),
            last_status="canceled" if error.code == "canceled" else "failed",
            last_job_id=job.id,
        )
