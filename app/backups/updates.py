"""The backup a platform takes before it updates (or migrates) a pod's app.

One request: start a backup tagged ``before-update`` and ``app-version=<v>``, wait for its
job to end (polling the job row: the request never runs a job, see ARCHITECTURE.md), and
answer with the evidence: the snapshot the job recorded, pinned, and the one restore call
that puts the pod back. A failure answers 409 with the job's error code so the platform
refuses the update; a backup still running at the deadline answers 202 (it goes on).

The pin is written by the backup job itself, in the transaction that records the snapshot
(``JobParams.pin``), so a request that stops waiting still leaves it pinned.

A backup already queued or running is not this one (it may have started before the
platform stopped writing, and it carries none of the tags): the request waits for whatever
exclusive job holds the pod, then starts its own. If the pod is still busy at the deadline
it answers 409 ``PodBusy`` and nothing was started.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit import service as audit
from app.auth.dependencies import Principal
from app.config import Settings
from app.db import transaction
from app.errors import Conflict, ValidationFailed
from app.jobs import repository as job_rows
from app.jobs import service as jobs
from app.jobs.errors import PodBusy
from app.jobs.schemas import JobRead
from app.models import Pod, Snapshot
from app.models.kinds import FINAL_STATUSES, JobKind, JobStatus
from app.models.shapes import JobParams
from app.snapshots import repository as snapshot_rows

TAG = "before-update"
TRIGGER = "before-update"  # the job's trigger, its `trigger:` tag and the pin's `by`
# A restic tag value: no comma (restic splits --tag on it), no space or control character;
# what version strings hold (1.2.3, v2.0.0-rc.1+build.5, 1:2.3~beta, 2024.06.01_2).
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~:-]*$")
VERSION_HINT = (
    "give the version the pod runs now, as letters, digits and . _ + ~ : - "
    "(e.g. 2.4.1 or v3.0.0-rc.1), starting with a letter or digit"
)
FIRST_POLL, LAST_POLL = 0.2, 2.0


class BackupBeforeUpdateFailed(Conflict):
    """The backup did not make a complete snapshot: the platform must not update."""

    message = "The backup before the update failed"

    def __init__(self, message: str, *, code: str, job: JobRead, hint: str | None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.job = job

    def body(self) -> dict[str, Any]:
        return {**super().body(), "code": self.code, "job": self.job.model_dump(mode="json")}


def app_version(value: str) -> str:
    """The app version as the tag carries it (trimmed), or a 422 naming the field."""
    version = value.strip()
    if not version or len(version) > 100 or not _VERSION.match(version):
        raise ValidationFailed(
            "app_version", f"'{value[:120]}' cannot be a snapshot tag value", hint=VERSION_HINT
        )
    return version


def params(version: str, note: str | None, pin_days: int | None) -> JobParams:
    pin_note = f"before update to {version}" + (f": {note}" if note else "")
    return JobParams(
        tags=[TAG, f"app-version={version}"], pin=True, pin_days=pin_days, pin_note=pin_note
    )


async def start(
    maker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    redis: ArqRedis,
    settings: Settings,
    principal: Principal,
    pod: Pod,
    *,
    plan: str,
    job_params: JobParams,
    client: str | None,
    deadline: float,
) -> JobRead:
    """Create this request's own backup job (committed and enqueued on return), once no
    other exclusive job holds the pod; PodBusy when one still does at the deadline."""
    while True:
        try:
            async with transaction(maker) as session:
                job, _ = await jobs.create(
                    session,
                    redis,
                    settings,
                    kind=JobKind.BACKUP,
                    pod_id=pod.id,
                    account_id=pod.account_id,
                    trigger=TRIGGER,
                    plan=plan,
                    params=job_params,
                    idempotent=False,
                )
                await audit.record(
                    session,
                    "backup.before_update",
                    principal=principal,
                    account_id=pod.account_id,
                    pod_id=pod.id,
                    detail={
                        "job_id": str(job.id),
                        "plan": plan,
                        "tags": job_params.tags,
                        "pin_days": job_params.pin_days,
                    },
                    client=client,
                )
                return jobs.to_read(job)
        except PodBusy as busy:
            other = busy.detail.get("job_id") if isinstance(busy.detail, dict) else None
            if other is not None:
                ended = await _ends(engine, uuid.UUID(other), deadline)
            else:  # the job in the way ended between the insert and the look-up
                ended = time.monotonic() < deadline
                await asyncio.sleep(FIRST_POLL)
            if not ended:
                raise PodBusy(
                    busy.message,
                    hint="no backup was started: call again once that job has ended "
                    "(GET /v1/jobs/{job_id}), and do not update the app meanwhile",
                    detail=busy.detail,
                ) from None


async def _ends(engine: AsyncEngine, job_id: uuid.UUID, deadline: float) -> bool:
    """Whether the job has ended by the deadline (a job gone counts as ended)."""
    row = await wait(engine, job_id, deadline)
    return row is None or row["status"] in FINAL_STATUSES


async def wait(engine: AsyncEngine, job_id: uuid.UUID, deadline: float) -> Mapping[str, Any] | None:
    """Poll the job's row until it is final or the deadline passes; its last row. One short
    statement per poll on a pooled connection: nothing is held while waiting."""
    pause = FIRST_POLL
    while True:
        row = await job_rows.fetch_row(engine, job_id)
        if row is None or row["status"] in FINAL_STATUSES:
            return row
        left = deadline - time.monotonic()
        if left <= 0:
            return row
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 1.5, LAST_POLL)


async def evidence(session: AsyncSession, pod: Pod, plan: str, job: JobRead) -> Snapshot | None:
    """The snapshot a succeeded backup job recorded (its row is the evidence), if it is
    still there (a refresh or prune could have dropped it since)."""
    snapshot_id = (job.result or {}).get("snapshot_id")
    if not isinstance(snapshot_id, str) or not snapshot_id:
        return None
    return await snapshot_rows.find(session, pod.id, plan, snapshot_id)


def failure(job: JobRead) -> BackupBeforeUpdateFailed:
    """Why a finished job gives no rollback point, as the platform acts on it."""
    if job.status == JobStatus.SUCCEEDED:  # but its snapshot is gone (``evidence``)
        return BackupBeforeUpdateFailed(
            "the backup succeeded but its snapshot is no longer recorded",
            code="snapshot_not_found",
            job=job,
            hint="call again for a new backup; do not update the app meanwhile",
        )
    if job.status == JobStatus.PARTIAL:
        count = (job.result or {}).get("unreadable_count")
        return BackupBeforeUpdateFailed(
            f"the backup before the update is incomplete: {count} file(s) could not be read",
            code="partial",
            job=job,
            hint="the job's result lists them: fix their permissions (or remove them) and "
            "call again; do not update the app meanwhile",
        )
    error = job.error
    code = error.code if error else str(job.status)
    message = error.message if error else f"the backup ended {job.status}"
    return BackupBeforeUpdateFailed(
        f"the backup before the update failed ({code}): {message}",
        code=code,
        job=job,
        hint=(error.hint if error and error.hint else "see the job's error")
        + "; do not update the app until a backup before the update has succeeded",
    )


def rollback(pod: Pod, plan: str, snapshot_id: str) -> dict[str, Any]:
    """The one restore call that puts the pod back as it was before the update: files and
    database, `mirror` (files the update added are deleted), after a safety backup of the
    updated state (so the rollback itself can be undone)."""
    body: dict[str, Any] = {
        "snapshot_id": snapshot_id,
        "files": pod.files is not None,
        "database": pod.database is not None,
        "mode": "mirror",
        "safety_backup": True,
    }
    if plan != "owner":
        body["plan"] = plan
    return {"method": "POST", "path": f"/v1/pods/{pod.id}/restores", "body": body}
