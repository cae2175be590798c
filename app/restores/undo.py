"""Undo a restore: restore the pod from the safety snapshot that restore took, over the same
scope (the same paths, files in mirror mode so what the restore added goes; the database
when the restore loaded it). The undo is a restore itself, with its own safety backup, so
it can be undone in turn."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Principal
from app.errors import Conflict, Gone
from app.jobs import service as jobs
from app.models import Job, Pod
from app.models.kinds import JobKind, JobStatus
from app.models.shapes import JobParams
from app.pods import service as pods
from app.snapshots import repository as snapshots


class NotUndoable(Conflict):
    message = "This job cannot be undone"


class SafetySnapshotGone(Gone):
    message = "The restore's safety snapshot is no longer in the repository"


def _short(job: Job) -> str:
    return str(job.id)[:8]


async def plan_undo(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID
) -> tuple[Job, Pod, JobParams]:
    """The restore job to undo, its pod, and the params of the restore that undoes it.
    404 for another account's job; 409/410 with a hint when it cannot be undone."""
    job = await jobs.get_visible(session, principal, job_id)
    if job.kind != JobKind.RESTORE:
        raise NotUndoable(
            f"job {_short(job)} is a {job.kind}, not a restore",
            hint="undo takes the id of a restore job (GET /v1/pods/{pod_id}/jobs?kind=restore)",
        )
    if job.params.dry_run:
        raise NotUndoable(
            f"job {_short(job)} was a preview (dry_run): it changed nothing",
            hint="only a restore that ran can be undone",
        )
    if job.status != JobStatus.SUCCEEDED:
        raise NotUndoable(
            f"restore {_short(job)} is {job.status}, not succeeded",
            hint="wait until it has finished; a restore that failed or was canceled may have "
            "changed part of the pod: restore its safety snapshot (result.safety_snapshot_id) "
            "with POST /v1/pods/{pod_id}/restores",
        )
    result = job.result or {}
    safety_id = result.get("safety_snapshot_id")
    if not isinstance(safety_id, str) or not safety_id:
        raise NotUndoable(
            f"restore {_short(job)} took no safety snapshot (safety_backup: false, or the pod "
            "had no backup target then)",
            hint="there is nothing to go back to; restore an older snapshot of the pod instead",
        )
    assert job.pod_id is not None  # a restore always has its pod
    pod = await pods.get_visible(session, principal, job.pod_id)
    snap = await snapshots.find(session, pod.id, job.plan, safety_id)
    if snap is None:
        raise SafetySnapshotGone(
            f"the safety snapshot {safety_id[:8]} of restore {_short(job)} was forgotten "
            "(retention removed it after its pin expired, or it was deleted from the "
            "repository)",
            hint="the undo window is PODBACKUP_RESTORE_UNDO_DAYS days; restore an older "
            "snapshot of the pod instead",
        )
    files = "files" in result and pod.files is not None
    database = "database" in result and pod.database is not None
    if not files and not database:
        raise NotUndoable(
            f"restore {_short(job)} wrote neither files nor a database into the pod",
            hint="there is nothing to undo",
        )
    params = JobParams(
        source_pod_id=str(pod.id),
        snapshot_id=snap.id,
        paths=job.params.paths if files else None,
        files=files,
        database=database,
        # What the restore added within its paths goes too: the pod as it was.
        mode="mirror",
        safety_backup=True,
        undo_of=str(job.id),
    )
    return job, pod, params
