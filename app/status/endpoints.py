from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from app import plans
from app.auth.dependencies import AnyPrincipal, Principal
from app.errors import NotFound, error_responses
from app.jobs import service as jobs
from app.jobs.schemas import JobRead
from app.kit.fastread import json_response
from app.plans.repository import seconds_behind
from app.readcache.cache import Fresh, ReadCache
from app.snapshots.repository import parse_time
from app.status.reads import status_row
from app.status.schemas import CopyLag
from app.storage import prices
from app.storage.schemas import CostEstimateRead, GrowthRead

router = APIRouter(tags=["status"])


class LastBackup(BaseModel):
    at: datetime
    status: str
    job_id: uuid.UUID | None


class TargetHealth(BaseModel):
    """The target as the last light probe (or successful backup) found it."""

    state: Literal["available", "unavailable", "unknown"] = Field(
        description="unknown: not probed yet (a pod is probed once its schedule is on)"
    )
    code: str | None = Field(
        None,
        description="Why it is unavailable: address_refused, unresolvable, unreachable, "
        "timeout, credentials_rejected, bucket_unavailable, repository_missing, "
        "path_unavailable, probe_failed",
    )
    reason: str | None = None
    hint: str | None = None
    checked_at: datetime | None = Field(None, description="The last probe or backup that judged it")
    since: datetime | None = Field(None, description="When the current state began")


class PodStatus(BaseModel):
    pod_id: uuid.UUID
    plan: str
    configured: bool
    schedule_enabled: bool | None
    last_backup: LastBackup | None
    last_success_at: datetime | None
    last_snapshot_id: str | None
    last_snapshot_kind: str | None = Field(
        None,
        description="backup | safety | imported: a restore's safety snapshot is the newest "
        "one after a restore, but `latest` still means the newest backup",
    )
    next_run_at: datetime | None
    snapshot_count: int
    repository_size_bytes: int | None
    repository_size_at: datetime | None
    last_verification: dict[str, Any] | None
    active_job: JobRead | None
    repository_growth_30d: GrowthRead | None = Field(
        None,
        description="Repository size change over the last 30 days (see /stats); null until "
        "the size samples span a day.",
    )
    cost_estimate: CostEstimateRead | None = Field(
        None, description="Monthly storage cost of the current size at the provider's list price."
    )
    stale_alerted_at: datetime | None = Field(
        None, description="When `backup.stale` was raised; cleared by the next success."
    )
    target: TargetHealth | None = Field(
        None,
        description="The target between runs (owner plan, once settings exist): probed every "
        "PODBACKUP_TARGET_PROBE_HOURS and before the nightly run; `unavailable` raises "
        "`target.unavailable`.",
    )
    second_copy: CopyLag | None = Field(
        None,
        description="The second copy's lag behind the primary (null without a second copy).",
    )


def _copy_lag(v: dict[str, Any]) -> CopyLag | None:
    if not v["copy_configured"]:
        return None
    lag, state = v["copy_lag"] or {}, v["copy_state"] or {}
    oldest = parse_time(lag["oldest"]) if lag.get("oldest") else None
    last = state.get("last_success_at")
    return CopyLag(
        configured=True,
        snapshots_behind=int(lag.get("behind") or 0),
        seconds_behind=seconds_behind(oldest, datetime.now(UTC)),
        last_copy_at=parse_time(last) if last else None,
        last_status=state.get("last_status"),
        alerted=bool(state.get("stale_alerted_at")),
    )


@router.get(
    "/v1/pods/{pod_id}/status",
    summary="Backup overview: last backup and success, next run, snapshots, size, verification",
    response_model=PodStatus,
    responses=error_responses(401, 404, 422),
)
async def pod_status(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    request: Request,
    plan: Annotated[
        Literal["owner", "copy", "platform"], Query(description="platform: admins")
    ] = "owner",
) -> Response:
    cache: ReadCache = request.app.state.read_cache
    key = ("status", pod_id, plan)
    return await cache.serve(
        key, pod_id, principal, lambda: _read_status(request, principal, pod_id, plan)
    )


async def _read_status(
    request: Request, principal: Principal, pod_id: uuid.UUID, plan: str
) -> Fresh:
    """The status from PostgreSQL (one statement), visible to ``principal`` or 404."""
    row = await status_row(request.app.state.engine, pod_id, plan)
    if row is None or not principal.owns(row.account_id) or not plans.visible(principal, plan):
        raise NotFound("Pod not found", hint="check the pod id")
    v = row.values
    last = None
    if v["last_attempt_at"] is not None and v["last_status"]:
        last = LastBackup(at=v["last_attempt_at"], status=v["last_status"], job_id=v["last_job_id"])
    size = v["repo_size_bytes"]
    provider = row.provider if plan == "owner" else None
    estimate = prices.estimate(provider, size) if provider and size is not None else None
    status = PodStatus(
        pod_id=pod_id,
        plan=plan,
        configured=bool(v["copy_configured" if plan == "copy" else "configured"])
        if plan != "platform"
        else True,
        schedule_enabled=(v["schedule_enabled"] == "true") if v["configured"] else None,
        last_backup=last,
        last_success_at=v["last_success_at"],
        last_snapshot_id=v["last_snapshot_id"],
        last_snapshot_kind=v["last_snapshot_kind"],
        next_run_at=v["next_run_at"],
        snapshot_count=v["snapshot_count"],
        repository_size_bytes=size,
        repository_size_at=v["repo_size_at"],
        last_verification=v["last_verification"],
        active_job=jobs.read_mapping(v["active_job"]) if v["active_job"] else None,
        repository_growth_30d=GrowthRead.of(row.growth()) if size is not None else None,
        cost_estimate=CostEstimateRead.of(estimate),
        stale_alerted_at=v["stale_alerted_at"],
        target=_target(v) if plan == "owner" and v["configured"] else None,
        second_copy=_copy_lag(v),
    )
    return Fresh(json_response(status), row.account_id, admin_only=plan == "platform")


def _target(v: dict[str, Any]) -> TargetHealth:
    return TargetHealth(
        state=v["target_state"] or "unknown",
        code=v["target_code"],
        reason=v["target_reason"],
        hint=v["target_hint"],
        checked_at=v["target_checked_at"],
        since=v["target_since"],
    )
