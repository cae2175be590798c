from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status
from pydantic import Field, field_validator

from app.auth.dependencies import AnyPrincipal
from app.checks import subsets
from app.db import DbSession
from app.deps import RedisDep, SettingsDep
from app.errors import error_responses
from app.jobs.schemas import JobRead
from app.jobs.starting import require_settings, start_pod_job
from app.kit.validators import Body
from app.models.kinds import JobKind
from app.models.shapes import JobParams
from app.pods import service as pods

router = APIRouter(tags=["checks"])


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
    await require_settings(session, pod, "back up first")
    body = body or CheckRequest()
    # Absent and null mean different things (``subsets.choose``): set only what was given.
    if "read_data_subset" in body.model_fields_set:
        params = JobParams(trial_restore=body.trial_restore, read_data_subset=body.read_data_subset)
    else:
        params = JobParams(trial_restore=body.trial_restore, rotate=True)
    return await start_pod_job(
        session,
        redis,
        settings,
        principal,
        pod,
        kind=JobKind.CHECK,
        action="check.trigger",
        request=request,
        response=response,
        params=params,
        detail=params.stored(),
    )
