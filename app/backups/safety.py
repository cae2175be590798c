"""The safety backup: a snapshot of a pod as it is now, taken before a restore writes into
it, so the restore itself can be undone (``POST /v1/restores/{job_id}/undo``). It is
pinned for PODBACKUP_RESTORE_UNDO_DAYS, so retention keeps it at least that long."""

from __future__ import annotations

from datetime import timedelta

from app.backups.pipeline import run_backup
from app.engine.context import JobContext
from app.models import Pod
from app.models.base import utcnow
from app.plans import targets
from app.pods.service import PodSecrets
from app.snapshots import repository as snapshots
from app.snapshots.jobs import sync_plan_state


async def safety_backup(ctx: JobContext, pod: Pod, secrets: PodSecrets) -> str | None:
    """Snapshot ``pod`` into the job's plan and record it at once; its id, or None when the
    pod has no backup target or nothing to back up."""
    async with ctx.session() as session:
        try:
            target = await targets.resolve(
                session, ctx.settings, ctx.services.keyring, pod, ctx.job.plan
            )
        except targets.NoBackupTarget:
            await ctx.log("the pod has no backup target: no safety backup", level="warning")
            return None
    if not pod.files and not pod.database:
        return None
    await ctx.phase("safety backup")
    run = await run_backup(ctx, pod, secrets, target, extra_tags=["safety:before-restore"])
    snap = run.backup
    # Recorded at once (not with the job's end): the undo point exists even if the
    # restore then fails.
    async with ctx.transaction() as session:
        assert snap.snapshot is not None
        row = await snapshots.upsert(
            session,
            pod_id=pod.id,
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
        days = ctx.settings.restore_undo_days
        if days > 0:
            await snapshots.pin(
                session,
                row.pk,
                until=utcnow() + timedelta(days=days),
                note=f"safety before restore {str(ctx.job.id)[:8]}",
                by="restore",
            )
        await sync_plan_state(session, pod.id, ctx.job.plan, newest=snap.snapshot_id)
    await ctx.log(f"safety snapshot {snap.short_id} taken before restoring")
    return snap.snapshot_id
