from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import Field

from app.audit import service as audit
from app.auth.dependencies import AnyPrincipal, client_address
from app.db import DbSession
from app.deps import RedisDep, SettingsDep
from app.errors import Conflict, Forbidden, error_responses
from app.jobs import service as jobs
from app.jobs.schemas import JobRead
from app.kit.validators import Body
from app.models import BackupSettings
from app.pods import service as pods

router = APIRouter(tags=["backups"])


class NotConfigured(Conflict):
    message = "The pod has no backup settings"


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
    plan = body.plan if body else "owner"
    if plan == "platform":
        if not principal.is_admin:
            raise Forbidden("platform backups are the operator's", hint="use an admin token")
        if not settings.platform_repository:
            raise NotConfigured(
                "platform backups are off on this service",
                hint="set PODBACKUP_PLATFORM_REPOSITORY and its password",
            )
    elif await session.get(BackupSettings, pod.id) is None:
        raise NotConfigured(
            "the pod has no backup settings yet",
            hint="set a target with PUT /v1/pods/{pod_id}/backup-settings, verify it, then back up",
        )
    trigger = body.trigger if body else "manual"
    job, created = await jobs.create(
        session,
        redis,
        settings,
        kind="backup",
        pod_id=pod.id,
        account_id=pod.account_id,
        trigger=trigger,
        plan=plan,
    )
    if created:
        await audit.record(
            session,
            "backup.trigger",
            principal=principal,
            account_id=pod.account_id,
            pod_id=pod.id,
            detail={"job_id": str(job.id), "trigger": trigger, "plan": plan},
            client=client_address(request),
        )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return jobs.to_read(job)
