from __future__ import annotations

import logging
import uuid
from typing import Annotated, Literal
from urllib.parse import quote

from arq.connections import ArqRedis
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import AnyPrincipal, client_address
from app.config import Settings
from app.db import DbSession, commit
from app.deps import KeyringDep, RedisDep, ResticDep, SettingsDep
from app.errors import NotFound, error_responses
from app.integrations.restic import ResticError
from app.jobs import service as jobs
from app.jobs.schemas import JobRead
from app.kit.fastread import json_response
from app.kit.pagination import Page, PageQuery, make_page
from app.models import Pod, Snapshot
from app.models.kinds import JobKind
from app.plans import targets
from app.pods import service as pods
from app.readcache.cache import Fresh, ReadCache
from app.snapshots import service
from app.snapshots.download import DownloadSlots, Dump, DumpResponse, download_error
from app.snapshots.schemas import FileEntry, PinRequest, SnapshotKind, SnapshotRead
from app.snapshots.service import request_index

log = logging.getLogger(__name__)
router = APIRouter(tags=["snapshots"])

PlanQuery = Annotated[
    Literal["owner", "copy", "platform"],
    Query(description="`copy`: the owner's second copy; `platform`: admins only."),
]


@router.get(
    "/v1/pods/{pod_id}/snapshots",
    summary="Snapshots of a pod, newest first (served from the database, not restic)",
    response_model=Page[SnapshotRead],
    responses=error_responses(401, 404, 422),
)
async def list_snapshots(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    params: PageQuery,
    request: Request,
    tag: Annotated[str | None, Query(max_length=200, description="e.g. `trigger:manual`")] = None,
    kind: Annotated[
        SnapshotKind | None,
        Query(description="Only `backup`, `safety` (taken by restores) or `imported` snapshots."),
    ] = None,
    pinned: Annotated[
        bool | None,
        Query(description="`true`: only snapshots pinned now; `false`: only those not pinned."),
    ] = None,
    plan: PlanQuery = "owner",
) -> Response:
    service.check_plan(principal, plan)

    async def read() -> Fresh:
        items, total, owner = await service.list_visible(
            request.app.state.engine,
            principal,
            pod_id,
            plan,
            tag,
            params.limit,
            params.offset,
            kind=kind,
            pinned=pinned,
        )
        page = json_response(make_page(items, total, params))
        return Fresh(page, owner, admin_only=plan == "platform")

    cache: ReadCache = request.app.state.read_cache
    key = ("snapshots", pod_id, plan, tag, kind, pinned, params.limit, params.offset)
    return await cache.serve(key, pod_id, principal, read)


@router.post(
    "/v1/pods/{pod_id}/snapshots/refresh",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Re-read the repository: add snapshots made outside the service, drop forgotten ones",
    responses=error_responses(401, 404, 409, 422),
)
async def refresh_snapshots(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    plan: PlanQuery = "owner",
) -> JobRead:
    pod = await pods.get_visible(session, principal, pod_id)
    service.check_plan(principal, plan)
    job, _ = await jobs.create(
        session,
        redis,
        settings,
        kind=JobKind.REFRESH,
        pod_id=pod.id,
        account_id=pod.account_id,
        plan=plan,
        trigger="api",
    )
    return jobs.to_read(job)


@router.get(
    "/v1/pods/{pod_id}/snapshots/{snapshot_id}",
    summary="One snapshot (full or short id) with its summary and tags",
    responses=error_responses(401, 404, 422),
)
async def get_snapshot(
    pod_id: uuid.UUID,
    snapshot_id: str,
    principal: AnyPrincipal,
    session: DbSession,
    plan: PlanQuery = "owner",
) -> SnapshotRead:
    pod = await pods.get_visible(session, principal, pod_id)
    service.check_plan(principal, plan)
    return service.to_read(await service.get(session, pod, plan, snapshot_id))


@router.put(
    "/v1/pods/{pod_id}/snapshots/{snapshot_id}/pin",
    summary="Pin a snapshot: retention keeps it (until `days` have passed, or until unpinned)",
    responses=error_responses(401, 404, 422),
)
async def pin_snapshot(
    pod_id: uuid.UUID,
    snapshot_id: str,
    principal: AnyPrincipal,
    session: DbSession,
    request: Request,
    body: PinRequest | None = None,
    plan: PlanQuery = "owner",
) -> SnapshotRead:
    pod = await pods.get_visible(session, principal, pod_id)
    service.check_plan(principal, plan)
    snap = await service.get(session, pod, plan, snapshot_id)
    ask = body or PinRequest()
    snap = await service.set_pin(
        session, principal, snap, note=ask.note, days=ask.days, client=client_address(request)
    )
    return service.to_read(snap)


@router.delete(
    "/v1/pods/{pod_id}/snapshots/{snapshot_id}/pin",
    summary="Unpin a snapshot: retention treats it like any other again",
    responses=error_responses(401, 404, 422),
)
async def unpin_snapshot(
    pod_id: uuid.UUID,
    snapshot_id: str,
    principal: AnyPrincipal,
    session: DbSession,
    request: Request,
    plan: PlanQuery = "owner",
) -> SnapshotRead:
    pod = await pods.get_visible(session, principal, pod_id)
    service.check_plan(principal, plan)
    snap = await service.get(session, pod, plan, snapshot_id)
    snap = await service.clear_pin(session, principal, snap, client=client_address(request))
    return service.to_read(snap)


@router.get(
    "/v1/pods/{pod_id}/snapshots/{snapshot_id}/files",
    summary="Children of a folder in a snapshot, from the browse index",
    responses=error_responses(401, 404, 409, 422),
)
async def list_files(
    pod_id: uuid.UUID,
    snapshot_id: str,
    principal: AnyPrincipal,
    session: DbSession,
    params: PageQuery,
    redis: RedisDep,
    settings: SettingsDep,
    path: Annotated[str, Query(max_length=4096, description="Folder, e.g. /files/uploads")] = "/",
    plan: PlanQuery = "owner",
) -> Page[FileEntry]:
    pod = await pods.get_visible(session, principal, pod_id)
    service.check_plan(principal, plan)
    snap = await service.get(session, pod, plan, snapshot_id)
    await _index_on_demand(session, redis, settings, pod, plan, snap)
    folder = service.normalize_path(path)
    items, total = await service.children(session, snap, folder, params.limit, params.offset)
    return make_page(items, total, params)


async def _index_on_demand(
    session: AsyncSession, redis: ArqRedis, settings: Settings, pod: Pod, plan: str, snap: Snapshot
) -> None:
    """A snapshot without a usable index gets one queued (at most one at a time); the
    caller's 409 then tells the truth: "indexing has been requested"."""
    if snap.index_status in ("none", "failed"):
        # Commit now so the job survives the 409 that follows.
        await request_index(session, redis, settings, pod, plan, snap.id)
        await commit(session)


def _disposition(name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@router.get(
    "/v1/pods/{pod_id}/snapshots/{snapshot_id}/download",
    summary="Download a file as it is, or a folder as a tar archive (streamed)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {}, "application/x-tar": {}},
            "description": "The file's bytes, or a tar of the folder",
        },
        **error_responses(401, 404, 409, 422, 429, 502, 503),
    },
)
async def download(
    pod_id: uuid.UUID,
    snapshot_id: str,
    principal: AnyPrincipal,
    session: DbSession,
    request: Request,
    settings: SettingsDep,
    keyring: KeyringDep,
    restic: ResticDep,
    redis: RedisDep,
    path: Annotated[str, Query(min_length=1, max_length=4096)],
    plan: PlanQuery = "owner",
) -> StreamingResponse:
    pod = await pods.get_visible(session, principal, pod_id)
    service.check_plan(principal, plan)
    snap = await service.get(session, pod, plan, snapshot_id)
    await _index_on_demand(session, redis, settings, pod, plan, snap)
    service.require_index(snap)
    clean = service.normalize_path(path)
    entry = await service.node(session, snap, clean) if clean != "/" else None
    if clean != "/" and entry is None:
        raise NotFound(
            f"'{clean}' is not in snapshot {snap.short_id}",
            hint="browse the snapshot with …/files?path=/ to find the path",
        )
    is_dir = entry is None or entry.type == "dir"
    target = await targets.resolve(session, settings, keyring, pod, plan)
    slots: DownloadSlots = request.app.state.download_slots
    release = slots.take(pod.account_id)
    try:
        dump = await Dump.start(
            restic, target.repo, snap.id, clean, archive="tar" if is_dir else None
        )
    except ResticError as exc:
        release()
        log.warning(
            "download of %s from snapshot %s failed (%s): %s",
            clean,
            snap.short_id,
            exc.code,
            exc.message,
        )
        raise download_error(exc) from None
    except BaseException:
        release()
        raise
    name = (entry.name if entry is not None else f"snapshot-{snap.short_id}") + (
        ".tar" if is_dir else ""
    )
    headers = {"Content-Disposition": _disposition(name), "Cache-Control": "no-store"}
    if not is_dir and entry is not None and entry.size is not None:
        headers["Content-Length"] = str(entry.size)
    return DumpResponse(
        dump,
        release=release,
        idle_seconds=settings.download_idle_seconds,
        what=f"{clean} from snapshot {snap.short_id}",
        media_type="application/x-tar" if is_dir else "application/octet-stream",
        headers=headers,
    )
