"""The restore job: (safety backup) → restic restore into scratch → stop hook → files back
into the pod (only what differs; `mirror` also deletes extras) → database loaded → start
hook. The job's pod is the pod written to; the snapshot may come from another pod of the
same account (a clone)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.backups import targets
from app.backups.pipeline import pod_stopped, run_backup
from app.backups.sources import db_endpoint, sftp_endpoint
from app.engine.context import JobContext, JobOutcome, ProgressPump
from app.engine.errors import JobFailure
from app.integrations import localfs
from app.integrations.dumps import load
from app.integrations.sftp import MirrorProgress, upload
from app.kit.netpolicy import Policy
from app.models import Job, Pod, Snapshot
from app.pods.service import PodSecrets, decrypt_secrets
from app.restores.dumps import vet_dump
from app.restores.paths import files_subpaths
from app.snapshots import repository as snapshots
from app.snapshots.jobs import sync_plan_state


@dataclass
class Plan:
    source: Pod
    target_pod: Pod
    secrets: PodSecrets
    snapshot: Snapshot
    source_target: targets.Target


async def _plan(ctx: JobContext) -> Plan:
    params = ctx.job.params
    async with ctx.session() as session:
        target_pod = await session.get(Pod, ctx.job.pod_id)
        source = await session.get(Pod, uuid.UUID(params["source_pod_id"]))
        if target_pod is None or source is None:
            raise JobFailure("pod_deleted", "the pod was deleted", retryable=False)
        snap = await snapshots.find(session, source.id, ctx.job.plan, params["snapshot_id"])
        if snap is None:
            raise JobFailure(
                "snapshot_not_found",
                "the snapshot is no longer recorded",
                hint="refresh the snapshot list",
                retryable=False,
            )
        source_target = await targets.resolve(
            session, ctx.settings, ctx.services.keyring, source, ctx.job.plan
        )
        secrets = decrypt_secrets(ctx.services.keyring, target_pod)
    ctx.secret(*secrets.values(), *source_target.repo.secret_values())
    return Plan(source, target_pod, secrets, snap, source_target)


def _upload_progress(p: MirrorProgress) -> dict[str, Any]:
    return {
        "phase": f"files: {p.phase}",
        "files_done": p.files_done,
        "files_total": p.files_total,
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
    }


class RestoreHandler:
    async def run(self, ctx: JobContext) -> JobOutcome:
        params = ctx.job.params
        plan = await _plan(ctx)
        want_files = bool(params.get("files", True)) and plan.target_pod.files is not None
        want_db = bool(params.get("database", True)) and plan.target_pod.database is not None
        result: dict[str, Any] = {
            "snapshot_id": plan.snapshot.id,
            "source_pod_id": str(plan.source.id),
            "mode": params.get("mode", "merge"),
        }
        safety = None
        if params.get("safety_backup", True):
            safety = await self._safety_backup(ctx, plan)
        result["safety_snapshot_id"] = safety

        scratch = (
            ctx.settings.cache_dir / "pods" / str(plan.target_pod.id) / f"restore-{ctx.job.id}"
        )
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            dump_file = await self._fetch(ctx, plan, scratch, want_files, want_db)
            # Checked before the pod is touched: a restore that fails halfway would leave
            # its files restored and its database not.
            if want_db and dump_file is None:
                raise JobFailure(
                    "no_database_dump",
                    "the snapshot holds no database dump to restore",
                    hint="restore files only (database: false)",
                    retryable=False,
                )
            dump_check = await vet_dump(ctx, plan.snapshot, dump_file) if dump_file else None
            policy = Policy.from_settings(ctx.settings)
            async with pod_stopped(ctx, plan.target_pod, policy):
                if want_files:
                    result["files"] = await self._files(ctx, plan, scratch / "files", policy)
                if want_db:
                    assert dump_file is not None
                    result["database"] = await self._database(ctx, plan, dump_file, policy)
                    result["database"]["dump"] = dump_check
        finally:
            # In a thread: deleting a large scratch restore takes seconds, and the loop
            # must keep the job's heartbeat going meanwhile.
            await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
        return JobOutcome(result=result)

    async def _safety_backup(self, ctx: JobContext, plan: Plan) -> str | None:
        """A snapshot of the pod as it is now, so the restore itself can be undone."""
        async with ctx.session() as session:
            try:
                target = await targets.resolve(
                    session, ctx.settings, ctx.services.keyring, plan.target_pod, ctx.job.plan
                )
            except (JobFailure, targets.NoBackupTarget):
                await ctx.log("the pod has no backup target: no safety backup", level="warning")
                return None
        if not plan.target_pod.files and not plan.target_pod.database:
            return None
        await ctx.phase("safety backup")
        run = await run_backup(
            ctx, plan.target_pod, plan.secrets, target, extra_tags=["safety:before-restore"]
        )
        snap = run.backup
        # Recorded at once (not with the job's end): the undo point exists even if the
        # restore then fails.
        async with ctx.transaction() as session:
            assert snap.snapshot is not None
            await snapshots.upsert(
                session,
                pod_id=plan.target_pod.id,
                plan=ctx.job.plan,
                snap=snap.snapshot,
                job_id=ctx.job.id,
                # What it holds, as a backup records it (the database it dumped), and the
                # mark that keeps `latest` off it. No "status": retention would count it
                # as a successful backup.
                summary={
                    **snap.summary,
                    "files": run.staged.files,
                    "database": run.staged.database,
                    "unreadable_count": len(run.staged.unreadable),
                    "safety": True,
                },
            )
            await sync_plan_state(
                session, plan.target_pod.id, ctx.job.plan, newest=snap.snapshot_id
            )
        await ctx.log(f"safety snapshot {snap.short_id} taken before restoring")
        return snap.snapshot_id

    async def _fetch(
        self, ctx: JobContext, plan: Plan, scratch: Path, want_files: bool, want_db: bool
    ) -> Path | None:
        await ctx.phase("reading snapshot")
        include: list[str] = []
        if want_files:
            include += [f"/files/{p}" for p in files_subpaths(ctx.job.params.get("paths"))] or [
                "/files"
            ]
        if want_db:
            include.append("/database")
        async with ProgressPump(ctx, lambda m: m) as pump:

            def on_status(message: dict[str, Any]) -> None:
                if message.get("message_type") == "status":
                    pump(
                        {
                            "phase": "reading snapshot",
                            "percent": round(100 * float(message.get("percent_done") or 0), 1),
                            "bytes_done": message.get("bytes_restored"),
                            "bytes_total": message.get("total_bytes"),
                        }
                    )

            await ctx.services.restic.restore(
                plan.source_target.repo,
                plan.snapshot.id,
                scratch,
                include=include,
                on_status=on_status,
                cancel=ctx.cancel,
            )
        ctx.check_cancel()
        for rel in files_subpaths(ctx.job.params.get("paths")) if want_files else []:
            if not os.path.lexists(scratch / "files" / rel):
                raise JobFailure(
                    "path_not_found",
                    f"'/files/{rel}' is not in snapshot {plan.snapshot.short_id}",
                    hint="browse the snapshot with …/files?path=/files to find the path",
                    retryable=False,
                )
        dumps = sorted((scratch / "database").glob("*.sql")) if want_db else []
        return dumps[0] if dumps else None

    async def _files(
        self, ctx: JobContext, plan: Plan, src: Path, policy: Policy
    ) -> dict[str, Any]:
        await ctx.phase("files")
        src.mkdir(parents=True, exist_ok=True)
        subpaths = files_subpaths(ctx.job.params.get("paths")) or None
        mirror_mode = ctx.job.params.get("mode") == "mirror"
        files = plan.target_pod.files or {}
        if files.get("kind") == "local":
            # The scratch restore is deleted afterwards: hard-link its files into the pod
            # (same filesystem) rather than write every byte a second time.
            stats = await localfs.push(
                src,
                Path(files["path"]),
                roots=ctx.settings.local_roots,
                subpaths=subpaths,
                delete_extra=mirror_mode,
                cancel=ctx.cancel,
                link=True,
            )
            return {
                "files_total": stats.files_total,
                "files_compared": stats.files_compared,
                "files_rewritten": stats.files_rewritten,
                "files_written": stats.files_copied + stats.files_linked,
                "bytes_written": stats.bytes_copied + stats.bytes_linked,
                "files_verified": stats.files_verified,
                "files_copied": stats.files_copied,
                "bytes_copied": stats.bytes_copied,
                "files_linked": stats.files_linked,
                "files_deleted": stats.files_deleted,
            }
        async with ProgressPump(ctx, _upload_progress) as pump:
            up = await upload(
                sftp_endpoint(plan.target_pod, plan.secrets),
                policy,
                src,
                subpaths=subpaths,
                delete_extra=mirror_mode,
                on_progress=pump,
                cancel=ctx.cancel,
            )
        if up.host_key and not plan.target_pod.pinned_host_key:
            # A clone into a pod never backed up (or a restore without a safety backup) was
            # its first connection: trust on first use, as a backup does.
            async with ctx.transaction() as session:
                await targets.pin_host_key(session, plan.target_pod.id, up.host_key)
        return {
            "files_total": up.files_total,
            "files_compared": up.files_compared,
            "files_rewritten": up.files_rewritten,
            "files_written": up.files_uploaded,
            "bytes_written": up.bytes_uploaded,
            "files_verified": up.files_verified,
            "files_uploaded": up.files_uploaded,
            "bytes_uploaded": up.bytes_uploaded,
            "files_deleted": up.files_deleted,
        }

    async def _database(
        self, ctx: JobContext, plan: Plan, dump_file: Path, policy: Policy
    ) -> dict[str, Any]:
        await ctx.phase("database")
        endpoint = db_endpoint(plan.target_pod, plan.secrets)
        async with ProgressPump(
            ctx, lambda n: {"phase": "database: load", "bytes_done": n}
        ) as pump:
            loaded = await load(
                endpoint, policy, dump_file, replace=True, on_progress=pump, cancel=ctx.cancel
            )
        return {
            "name": endpoint.name,
            "tables": loaded.tables,
            "seconds": loaded.seconds,
            "not_restored": loaded.not_restored,
        }

    async def failed(self, session: AsyncSession, job: Job, error: dict[str, Any]) -> None:
        return None
