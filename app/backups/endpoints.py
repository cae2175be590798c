from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import Field

from app.auth.dependencies import AnyPrincipal
from app.db import DbSession
from app.deps import RedisDep, SettingsDep
from app.errors import Forbidden, error_responses
from app.jobs.schemas import JobRead
from app.jobs.starting import NotConfigured, require_settings, start_pod_job
from app.kit.validators import Body
from app.models.kinds import JobKind, Plan
from app.pods import service as pods

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
