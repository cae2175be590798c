from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app import plans
from app.auth.dependencies import AnyPrincipal
from app.db import DbSession
from app.errors import NotFound, error_responses
from app.models import BackupSettings
from app.models.base import utcnow
from app.plans import repository as plan_states
from app.pods import service as pods
from app.storage import service
from app.storage.overview import provider_of, size_overview
from app.storage.schemas import PodStats, SizeSample

router = APIRouter(tags=["status"])


@router.get(
    "/v1/pods/{pod_id}/stats",
    summary="Repository size over time, growth over 30 days and a monthly cost estimate",
    responses=error_responses(401, 404, 422),
)
async def pod_stats(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    days: Annotated[int, Query(ge=1, le=3650, description="Samples from the last N days.")] = 90,
    limit: Annotated[int, Query(ge=1, le=2000, description="At most this many samples.")] = 500,
    plan: Annotated[
        Literal["owner", "copy", "platform"], Query(description="platform: admins")
    ] = "owner",
) -> PodStats:
    pod = await pods.get_visible(session, principal, pod_id)
    if not plans.visible(principal, plan):
        raise NotFound("Pod not found", hint="check the pod id")
    state = await plan_states.get(session, pod.id, plan)
    growth, cost = await size_overview(session, pod.id, plan, state)
    row = await session.get(BackupSettings, pod.id) if plan == "owner" else None
    rows = await service.samples(session, pod.id, plan, utcnow() - timedelta(days=days), limit)
    return PodStats(
        pod_id=pod.id,
        plan=plan,
        provider=provider_of(row, plan),
        repository_size_bytes=state.repo_size_bytes if state else None,
        repository_size_at=state.repo_size_at if state else None,
        snapshot_count=state.snapshot_count if state else 0,
        growth_30d=growth,
        cost_estimate=cost,
        samples=[SizeSample(at=r.at, size_bytes=r.size_bytes) for r in rows],
    )
