"""The operator's fleet view of platform backups (admins only)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.auth.dependencies import AdminPrincipal
from app.db import DbSession
from app.deps import SettingsDep
from app.errors import error_responses
from app.kit.pagination import Page, PageQuery, make_page
from app.platform import repository

router = APIRouter(tags=["platform"])


class FleetPod(BaseModel):
    pod_id: uuid.UUID
    account_id: uuid.UUID
    name: str
    app: str
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_status: str | None
    next_run_at: datetime | None
    snapshot_count: int


@router.get(
    "/v1/platform/fleet",
    summary="Pods without a successful platform backup in the last hours (admin)",
    responses=error_responses(401, 403, 422),
)
async def fleet(
    principal: AdminPrincipal,
    session: DbSession,
    settings: SettingsDep,
    params: PageQuery,
    hours: Annotated[
        float | None, Query(gt=0, le=24 * 365, description="Default PODBACKUP_PLATFORM_STALE_HOURS")
    ] = None,
    all_pods: Annotated[bool, Query(description="List every pod, not only stale ones.")] = False,
) -> Page[FleetPod]:
    cutoff = datetime.now(UTC) - timedelta(hours=hours or settings.platform_stale_hours)
    rows, total = await repository.fleet(
        session, None if all_pods else cutoff, params.limit, params.offset
    )
    items = []
    for pod, state in rows:
        items.append(
            FleetPod(
                pod_id=pod.id,
                account_id=pod.account_id,
                name=pod.name,
                app=pod.app,
                last_success_at=state.last_success_at if state else None,
                last_attempt_at=state.last_attempt_at if state else None,
                last_status=state.last_status if state else None,
                next_run_at=state.next_run_at if state else None,
                snapshot_count=state.snapshot_count if state else 0,
            )
        )
    return make_page(items, total, params)
