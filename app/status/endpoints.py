from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.auth.dependencies import AnyPrincipal
from app.db import DbSession
from app.errors import NotFound, error_responses
from app.jobs import service as jobs
from app.jobs.schemas import JobRead
from app.models import BackupSettings, Job
from app.models.job import ACTIVE_STATUSES
from app.pods import service as pods
from app.status import repository
from app.storage.overview import size_overview
from app.storage.schemas import CostEstimateRead, GrowthRead

router = APIRouter(tags=["status"])


class LastBackup(BaseModel):
    at: datetime
    status: str
    job_id: uuid.UUID | None


class PodStatus(BaseModel):
    pod_id: uuid.UUID
    plan: str
    configured: bool
    schedule_enabled: bool | None
    last_backup: LastBackup | None
    last_success_at: datetime | None
    last_snapshot_id: str | None
    next_run_at: datetime | None
    snapshot_count: int
    repository_size_bytes: int | None
    repository_size_at: datetime | None
    last_verification: dict[str, Any] | None
    active_job: JobRead | None
    repository_growth_30d: GrowthRead | None = Field(
        None, description="Repository size change over the last 30 days (see /stats)."
    )
    cost_estimate: CostEstimateRead | None = Field(
        None, description="Monthly storage cost of the current size at the provider's list price."
    )
    stale_alerted_at: datetime | None = Field(
        None, description="When `backup.stale` was raised; cleared by the next success."
    )


@router.get(
    "/v1/pods/{pod_id}/status",
    summary="Backup overview: last backup and success, next run, snapshots, size, verification",
    responses=error_responses(401, 404, 422),
)
async def pod_status(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    plan: Annotated[Literal["owner", "platform"], Query(description="platform: admins")] = "owner",
) -> PodStatus:
    pod = await pods.get_visible(session, principal, pod_id)
    if plan == "platform" and not principal.is_admin:
        raise NotFound("Pod not found", hint="check the pod id")
    state = await repository.get(session, pod.id, plan)
    settings_row = await session.get(BackupSettings, pod.id) if plan == "owner" else None
    active = await session.scalar(
        select(Job)
        .where(Job.pod_id == pod.id, Job.plan == plan, Job.status.in_(ACTIVE_STATUSES))
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    last = None
    if state is not None and state.last_attempt_at is not None and state.last_status:
        last = LastBackup(
            at=state.last_attempt_at, status=state.last_status, job_id=state.last_job_id
        )
    growth, cost = await size_overview(session, pod.id, plan, state)
    return PodStatus(
        pod_id=pod.id,
        plan=plan,
        configured=settings_row is not None if plan == "owner" else True,
        schedule_enabled=bool((settings_row.schedule or {}).get("enabled"))
        if settings_row is not None
        else None,
        last_backup=last,
        last_success_at=state.last_success_at if state else None,
        last_snapshot_id=state.last_snapshot_id if state else None,
        next_run_at=state.next_run_at if state else None,
        snapshot_count=state.snapshot_count if state else 0,
        repository_size_bytes=state.repo_size_bytes if state else None,
        repository_size_at=state.repo_size_at if state else None,
        last_verification=state.last_verification if state else None,
        active_job=jobs.to_read(active) if active else None,
        repository_growth_30d=growth,
        cost_estimate=cost,
        stale_alerted_at=state.stale_alerted_at if state else None,
    )
