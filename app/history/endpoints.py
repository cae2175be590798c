from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from app.auth.dependencies import AnyPrincipal
from app.db import DbSession
from app.deps import KeyringDep, RedisDep, ResticDep, SettingsDep
from app.errors import error_responses
from app.history import service
from app.history.schemas import Change, DiffRead, DiffSource, HistoryRead
from app.kit.pagination import PageQuery, make_page
from app.plans import targets
from app.pods import service as pods
from app.snapshots import service as snapshots
from app.snapshots.download import DownloadSlots

router = APIRouter(tags=["snapshots"])

PlanQuery = Annotated[Literal["owner", "platform"], Query(description="`platform`: admins only.")]


@router.get(
    "/v1/pods/{pod_id}/snapshots/{snapshot_id}/diff",
    summary="What changed between two snapshots: files added, removed, modified, metadata",
    response_model=DiffRead,
    responses=error_responses(401, 404, 409, 422, 429, 502, 503),
)
async def diff(
    pod_id: uuid.UUID,
    snapshot_id: str,
    principal: AnyPrincipal,
    session: DbSession,
    params: PageQuery,
    request: Request,
    settings: SettingsDep,
    keyring: KeyringDep,
    restic: ResticDep,
    redis: RedisDep,
    against: Annotated[
        str | None,
        Query(
            max_length=64,
            description="The snapshot to compare with (id, short id or `latest`); default: "
            "the snapshot's parent, else the one before it",
        ),
    ] = None,
    change: Annotated[Change | None, Query(description="Only items with this change")] = None,
    source: Annotated[
        DiffSource,
        Query(
            description="`auto`: the index when both snapshots are indexed with content ids, "
            "else restic; `index` or `restic` to choose"
        ),
    ] = "auto",
    plan: PlanQuery = "owner",
) -> DiffRead:
    pod = await pods.get_visible(session, principal, pod_id)
    snapshots.check_plan(principal, plan)
    pair = await service.pair(session, pod, plan, snapshot_id, against)
    found = None
    if source != "restic" and await service.indexed(session, pair):
        found = await service.from_index(session, pair, change, params.limit, params.offset)
    if found is None and source == "index":
        await service.index_on_demand(session, redis, settings, pod, plan, pair)
        raise service.DiffNotIndexed(
            f"snapshots {pair.snap.short_id} and {pair.base.short_id} are not both indexed "
            "with content ids",
            hint="use source=restic (or auto), or retry once both are indexed",
            detail={"index_status": [pair.snap.index_status, pair.base.index_status]},
        )
    if found is None:
        await service.index_on_demand(session, redis, settings, pod, plan, pair)
        target = await targets.resolve(session, settings, keyring, pod, plan)
        slots: DownloadSlots = request.app.state.download_slots
        release = slots.take(pod.account_id)
        try:
            found = await service.from_restic(
                session,
                restic,
                target.repo,
                pair,
                timeout=settings.diff_timeout_seconds,
                change=change,
                limit=params.limit,
                offset=params.offset,
            )
        finally:
            release()
    page = make_page(found.items, found.total, params)
    return DiffRead(
        snapshot=service.ref(pair.snap),
        against=service.ref(pair.base),
        source=found.source,
        totals=found.totals,
        items=found.items,
        total=found.total,
        limit=params.limit,
        offset=params.offset,
        pagination=page.pagination,
        database=service.database(pair),
    )


@router.get(
    "/v1/pods/{pod_id}/files/history",
    summary="Every version of one file across the pod's snapshots, newest first",
    response_model=HistoryRead,
    responses=error_responses(401, 404, 422),
)
async def history(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    path: Annotated[
        str, Query(min_length=1, max_length=4096, description="e.g. /files/uploads/logo.png")
    ],
    plan: PlanQuery = "owner",
) -> HistoryRead:
    pod = await pods.get_visible(session, principal, pod_id)
    snapshots.check_plan(principal, plan)
    return await service.history(session, pod, plan, path)
