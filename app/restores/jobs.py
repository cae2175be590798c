"""The restore job: (safety backup) → restic restore into scratch → stop hook → files back
into the pod (only what differs; `mirror` also deletes extras) → database loaded → start
hook. The job's pod is the pod written to; the snapshot may come from another pod of the
same account (a clone).

``dry_run`` (a preview): the same restore into scratch and the same checks of the dump,
then a comparison with the pod instead of the safety backup, hooks and writes
(``preview.build``). ``undo_of``: the restore job this one undoes (``undo.py``)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.backups.safety import safety_backup
from app.engine.context import JobContext, JobOutcome, ProgressPump
from app.engine.errors import JobFailure
from app.kit.netpolicy import Policy
from app.models import Job, Pod, Snapshot
from app.models.shapes import JobError
from app.plans import targets
from app.podio.hooks import pod_stopped
from app.podio.write import load_database, put_files
from app.pods.service import PodSecrets, decrypt_secrets
from app.restores import preview
from app.restores.dumps import vet_dump
from app.restores.paths import files_subpaths
from app.snapshots import repository as snapshots


@dataclass
class Plan:
    source: Pod
    target_pod: Pod
    secrets: PodSecrets
    snapshot: Snapshot
    source_target: targets.Target


async def _plan(ctx: JobContext) -> Plan:
    params = ctx.job.params
    # Both set by the restore endpoint.
    assert params.source_pod_id is not None
    assert params.snapshot_id is not None
    async with ctx.session() as session:
        target_pod = await session.get(Pod, ctx.job.pod_id)
        source = await session.get(Pod, uuid.UUID(params.source_pod_id))
        if target_pod is None or source is None:
            raise JobFailure("pod_deleted", "the pod was deleted", retryable=False)
        snap = await snapshots.find(session, source.id, ctx.job.plan, params.snapshot_id)
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


class RestoreHandler:
    async def run(self, ctx: JobContext) -> JobOutcome:
        params = ctx.job.params
        plan = await _plan(ctx)
        want_files = params.files and plan.target_pod.files is not None
        want_db = params.database and plan.target_pod.database is not None
        result: dict[str, Any] = {
            "snapshot_id": plan.snapshot.id,
            "source_pod_id": str(plan.source.id),
            "mode": params.mode,
        }
        if params.undo_of:
            result["undo_of"] = params.undo_of
        if params.dry_run:
            result["dry_run"] = True
        safety = None
        if params.safety_backup and not params.dry_run:
            safety = await safety_backup(ctx, plan.target_pod, plan.secrets)
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
            if params.dry_run:
                result["preview"] = await preview.build(
                    ctx,
                    plan.target_pod,
                    plan.secrets,
                    scratch,
                    want_files=want_files,
                    dump_file=dump_file if want_db else None,
                    dump_check=dump_check,
                )
                return JobOutcome(result=result)
            policy = Policy.from_settings(ctx.settings)
            async with pod_stopped(ctx, plan.target_pod, policy):
                if want_files:
                    result["files"] = await put_files(
                        ctx,
                        plan.target_pod,
                        plan.secrets,
                        scratch / "files",
                        policy,
                        subpaths=files_subpaths(params.paths) or None,
                        delete_extra=params.mode == "mirror",
                    )
                if want_db:
                    assert dump_file is not None
                    result["database"] = await load_database(
                        ctx, plan.target_pod, plan.secrets, dump_file, policy
                    )
                    result["database"]["dump"] = dump_check
        finally:
            # In a thread: deleting a large scratch restore takes seconds, and the loop
            # must keep the job's heartbeat going meanwhile.
            await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
        return JobOutcome(result=result)

    async def _fetch(
        self, ctx: JobContext, plan: Plan, scratch: Path, want_files: bool, want_db: bool
    ) -> Path | None:
        await ctx.phase("reading snapshot")
        include: list[str] = []
        if want_files:
            include += [f"/files/{p}" for p in files_subpaths(ctx.job.params.paths)] or ["/files"]
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
        # An undo's paths may be missing from its safety snapshot: the restore it undoes
        # created them, and its mirror mode removes them again.
        undo = ctx.job.params.undo_of is not None
        for rel in files_subpaths(ctx.job.params.paths) if want_files and not undo else []:
            if not os.path.lexists(scratch / "files" / rel):
                raise JobFailure(
                    "path_not_found",
                    f"'/files/{rel}' is not in snapshot {plan.snapshot.short_id}",
                    hint="browse the snapshot with …/files?path=/files to find the path",
                    retryable=False,
                )
        dumps = sorted((scratch / "database").glob("*.sql")) if want_db else []
        return dumps[0] if dumps else None

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        return None
