from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import AnyPrincipal, Principal, client_address
from app.backups import updates
from app.config import Settings
from app.db import DbSession, commit
from app.deps import RedisDep, SettingsDep
from app.errors import Forbidden, error_responses
from app.jobs import service as jobs
from app.jobs.schemas import JobRead
from app.jobs.starting import NotConfigured, require_settings, start_pod_job
from app.kit.fastread import json_response
from app.kit.validators import Body
from app.models import Pod
from app.models.kinds import FINAL_STATUSES, JobKind, JobStatus, Plan
from app.pods import service as pods
from app.snapshots import service as snapshots
from app.snapshots.schemas import SnapshotRead, plain_note

router = APIRouter(tags=["backups"])


class BackupTrigger(Body):
    trigger: Literal["manual", "api"] = Field(
        "manual", description="`api` for internal services automating backups."
    )
    plan: Literal["owner", "platform"] = Field(
        "owner", description="`platform`: the operator's backup of the pod (admins only)."
    )


@router.post(
    "/v1/pods/{pod_id}/backups",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Back up the pod now (an already queued or running backup is returned)",
    responses=error_responses(401, 403, 404, 409, 422),
)
async def trigger_backup(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    body: BackupTrigger | None = None,
) -> JobRead:
    pod = await pods.get_visible(session, principal, pod_id)
    plan = Plan(body.plan) if body else Plan.OWNER
    await _check_plan(session, settings, principal, pod, plan)
    trigger = body.trigger if body else "manual"
    return await start_pod_job(
        session,
        redis,
        settings,
        principal,
        pod,
        kind=JobKind.BACKUP,
        action="backup.trigger",
        request=request,
        response=response,
        trigger=trigger,
        plan=plan,
        detail={"trigger": trigger, "plan": plan},
    )


async def _check_plan(
    session: AsyncSession, settings: Settings, principal: Principal, pod: Pod, plan: Plan
) -> None:
    if plan == Plan.PLATFORM:
        if not principal.is_admin:
            raise Forbidden("platform backups are the operator's", hint="use an admin token")
        if not settings.platform_repository:
            raise NotConfigured(
                "platform backups are off on this service",
                hint="set PODBACKUP_PLATFORM_REPOSITORY and its password",
            )
    else:
        await require_settings(session, pod, "verify it and back up")


class BeforeUpdateRequest(Body):
    model_config = {
        "extra": "forbid",
        "str_strip_whitespace": True,
        "json_schema_extra": {"examples": [{"app_version": "2.4.1", "note": "to 2.5.0"}]},
    }

    app_version: str = Field(
        min_length=1,
        max_length=100,
        description="The version the pod's app runs now (before the update): tagged on the "
        "snapshot as `app-version=<v>`. Letters, digits and `. _ + ~ : -`.",
    )
    note: Annotated[str | None, StringConstraints(max_length=400), AfterValidator(plain_note)] = (
        Field(None, description="Added to the pin's note (`before update to <v>: <note>`).")
    )
    pin_days: int | None = Field(
        30, ge=1, le=36500, description="Keep the snapshot this many days; null: until unpinned."
    )
    timeout_seconds: int = Field(
        900,
        ge=1,
        le=3600,
        description="How long the request waits for the backup (at most the service's "
        "PODBACKUP_BEFORE_UPDATE_MAX_WAIT_SECONDS); past it the answer is 202 and the backup "
        "goes on: poll the job.",
    )
    plan: Literal["owner", "platform"] = Field(
        "owner", description="`platform`: into the operator's backups (admins only)."
    )


class Rollback(BaseModel):
    method: str = Field(description="`POST`")
    path: str = Field(description="`/v1/pods/{pod_id}/restores`")
    body: dict[str, Any] = Field(description="The restore request, as it is to be sent")


class BeforeUpdateResult(BaseModel):
    snapshot: SnapshotRead = Field(description="The snapshot, tagged and pinned")
    job: JobRead
    rollback: Rollback = Field(
        description="The one call that puts the pod back as it was (files and database)"
    )


class BeforeUpdatePending(BaseModel):
    job: JobRead
    hint: str


@router.post(
    "/v1/pods/{pod_id}/before-update",
    status_code=status.HTTP_201_CREATED,
    response_model=BeforeUpdateResult,
    summary="Back up the pod before an app update; answers once the snapshot exists (or why not)",
    responses={
        202: {"model": BeforeUpdatePending, "description": "Still running at the timeout"},
        **error_responses(401, 403, 404, 409, 422, 503),
    },
)
async def before_update(
    pod_id: uuid.UUID,
    body: BeforeUpdateRequest,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> BeforeUpdateResult | Response:
    # An operator caps the wait below what their load balancer's idle timeout allows.
    deadline = time.monotonic() + min(body.timeout_seconds, settings.before_update_max_wait_seconds)
    pod = await pods.get_visible(session, principal, pod_id)
    version = updates.app_version(body.app_version)
    plan = Plan(body.plan)
    await _check_plan(session, settings, principal, pod, plan)
    await commit(session)  # nothing held while the backup runs
    job = await updates.start(
        request.app.state.sessionmaker,
        request.app.state.engine,
        redis,
        settings,
        principal,
        pod,
        plan=plan,
        job_params=updates.params(version, body.note, body.pin_days),
        client=client_address(request),
        deadline=deadline,
    )
    row = await updates.wait(request.app.state.engine, job.id, deadline)
    if row is not None:
        job = jobs.read_mapping(row)
    location = {"Location": f"/v1/jobs/{job.id}"}
    if job.status not in FINAL_STATUSES:
        pending = BeforeUpdatePending(
            job=job,
            hint=f"the backup goes on: poll GET /v1/jobs/{job.id} until it ends; once it has "
            "succeeded its snapshot (result.snapshot_id) is pinned and tagged before-update. "
            "Do not update the app before then.",
        )
        answer = json_response(pending, status.HTTP_202_ACCEPTED)
        answer.headers.update(location)
        return answer
    if job.status != JobStatus.SUCCEEDED:
        raise updates.failure(job)
    snap = await updates.evidence(session, pod, plan, job)
    if snap is None:  # the job says succeeded, but its evidence is gone (forgotten meanwhile)
        raise updates.failure(job)
    response.headers.update(location)
    return BeforeUpdateResult(
        snapshot=snapshots.to_read(snap),
        job=job,
        rollback=Rollback.model_validate(updates.rollback(pod, plan, snap.id)),
    )
