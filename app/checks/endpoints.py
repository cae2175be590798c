from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import Field, field_validator

from app.audit import service as audit
from app.auth.dependencies import AnyPrincipal, client_address
from app.checks import subsets
from app.db import DbSession
from app.deps import RedisDep, SettingsDep
from app.errors import Conflict, error_responses
from app.jobs import service as jobs
from app.jobs.schemas import JobRead
from app.kit.validators import Body
from app.models import BackupSettings
from app.pods import service as pods

router = APIRouter(tags=["checks"])


class NotConfigured(Conflict):
    message = "The pod has no backup settings"


class CheckRequest(Body):
    model_config = {
        "extra": "forbid",
        "str_strip_whitespace": True,
        "json_schema_extra": {
            "examples": [{}, {"read_data_subset": "10%", "trial_restore": False}]
        },
    }

    read_data_subset: str | None = Field(
        None,
        max_length=20,
        description=(
            "Omit for the rotation (`n/N`, N from the verification settings: every N checks "
            "read the whole repository); `null` to check the structure only; or `n/N` / `x%` "
            "to read that part now (the rotation does not move)."
        ),
    )
    trial_restore: bool = Field(
        True,
        description="Restore the latest dump into a scratch database and a sample of files.",
    )

    @field_validator("read_data_subset")
    @classmethod
    def _subset(cls, value: str | None) -> str | None:
        return subsets.validate(value) if value is not None else None


@router.post(
    "/v1/pods/{pod_id}/checks",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Verify the repository (rotating read-data subset) and trial-restore the latest backup",
    responses=error_responses(401, 404, 409, 422),
)
async def start_check(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    body: CheckRequest | None = None,
) -> JobRead:
    pod = await pods.get_visible(session, principal, pod_id)
    if await session.get(BackupSettings, pod.id) is None:
        raise NotConfigured(
            "the pod has no backup settings yet",
            hint="set a target with PUT /v1/pods/{pod_id}/backup-settings and back up first",
        )
    body = body or CheckRequest()
    params: dict[str, Any] = {"trial_restore": body.trial_restore}
    if "read_data_subset" in body.model_fields_set:
        params["read_data_subset"] = body.read_data_subset
    else:
        params["rotate"] = True
    job, created = await jobs.create(
        session,
        redis,
        settings,
        kind="check",
        pod_id=pod.id,
        account_id=pod.account_id,
        trigger="manual",
        params=params,
    )
    if created:
        await audit.record(
            session,
            "check.trigger",
            principal=principal,
            account_id=pod.account_id,
            pod_id=pod.id,
            detail={"job_id": str(job.id), **params},
            client=client_address(request),
        )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return jobs.to_read(job)
