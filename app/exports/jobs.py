"""The export job: one tar.gz of the pod (files/ + database/<name>.sql), from a snapshot or
from the pod as it is now, stored in the export store behind a link that expires."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.context import JobContext, JobOutcome
from app.engine.errors import JobFailure
from app.exports import repository, store
from app.exports.archive import snapshot_to_targz, tar_folders
from app.integrations.s3 import S3Failure
from app.kit.netpolicy import Policy
from app.models import Job, Pod
from app.models.kinds import JobStatus
from app.models.shapes import JobError
from app.plans import targets
from app.podio.hooks import pod_stopped
from app.podio.stage import stage_database, stage_files
from app.pods.service import decrypt_secrets
from app.snapshots import repository as snapshots

log = logging.getLogger(__name__)


class ExportHandler:
    async def run(self, ctx: JobContext) -> JobOutcome:
        export_id = uuid.UUID(ctx.job.params.export_id)
        snapshot_id = ctx.job.params.snapshot_id
        partial = store.work_path(ctx.settings, export_id)
        async with ctx.session() as session:
            pod = await session.get(Pod, ctx.job.pod_id)
            if pod is None:
                raise JobFailure("pod_deleted", "the pod was deleted", retryable=False)
            target = None
            snap = None
            if snapshot_id:
                snap = await snapshots.find(session, pod.id, ctx.job.plan, snapshot_id)
                if snap is None:
                    raise JobFailure(
                        "snapshot_not_found",
                        "the snapshot is no longer recorded",
                        hint="refresh the snapshot list",
                        retryable=False,
                    )
                target = await targets.resolve(
                    session, ctx.settings, ctx.services.keyring, pod, ctx.job.plan
                )
        try:
            if snap is not None and target is not None:
                ctx.secret(*target.repo.secret_values())
                await ctx.phase("archiving snapshot")
                size, digest = await snapshot_to_targz(
                    ctx.services.restic, target.repo, snap.id, partial
                )
                source: dict[str, Any] = {"snapshot_id": snap.id}
            else:
                size, digest, source = await self._from_pod(ctx, pod, partial)
            ctx.check_cancel()
            if store.uses_bucket(ctx.settings):
                await ctx.phase("uploading")
            storage_key = await store.save(ctx.settings, export_id, partial)
        except S3Failure as failure:
            # The operator's bucket is not the tenant's business: its address and error
            # text go to the operator's log, the job says what failed.
            log.warning("export %s: the export bucket failed: %s", export_id, failure.message)
            raise JobFailure(
                "export_store_failed",
                f"the archive was built but could not be stored ({failure.kind})",
                hint="a problem on the service's side; try again later or tell the operator",
                retryable=failure.network or failure.kind == "http",
            ) from None
        finally:
            partial.unlink(missing_ok=True)
        expires = datetime.now(UTC) + timedelta(seconds=ctx.settings.export_ttl_seconds)
        result = {"export_id": str(export_id), "size_bytes": size, "sha256": digest, **source}

        async def finalize(session: AsyncSession) -> None:
            await repository.mark_ready(
                session,
                export_id,
                size_bytes=size,
                sha256=digest,
                storage_key=storage_key,
                expires_at=expires,
                ready_at=datetime.now(UTC),
                snapshot_id=source.get("snapshot_id"),
            )

        status = JobStatus.PARTIAL if source.get("unreadable") else JobStatus.SUCCEEDED
        return JobOutcome(status=status, result=result, finalize=finalize)

    async def _from_pod(
        self, ctx: JobContext, pod: Pod, dest: Path
    ) -> tuple[int, str, dict[str, Any]]:
        """The pod as it is now: a fresh mirror and dump in a stage of the export's own."""
        secrets = decrypt_secrets(ctx.services.keyring, pod)
        ctx.secret(*secrets.values())
        policy = Policy.from_settings(ctx.settings)
        stage = ctx.settings.cache_dir / "pods" / str(pod.id) / ctx.job.plan / "export-stage"
        stage.mkdir(parents=True, exist_ok=True)
        try:
            async with pod_stopped(ctx, pod, policy):
                staged = await stage_files(ctx, pod, secrets, stage, policy)
                await stage_database(ctx, pod, secrets, stage, policy, staged)
            await ctx.phase("archiving")
            size, digest = await asyncio.to_thread(
                tar_folders, dest, {p: stage / p for p in staged.paths}
            )
        finally:
            shutil.rmtree(stage / "database", ignore_errors=True)
        return (
            size,
            digest,
            {
                "files": staged.files,
                "database": staged.database,
                "unreadable": staged.unreadable[:1000],
            },
        )

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        export_id = job.params.export_id
        if export_id:
            await repository.mark_failed(session, uuid.UUID(export_id))
