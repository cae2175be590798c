from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import tokens
from app.auth.dependencies import AnyPrincipal, Principal
from app.db import DbSession
from app.deps import RedisDep, SettingsDep
from app.errors import AppError, NotFound, Unauthorized, error_responses
from app.jobs import service
from app.jobs.schemas import JobRead, KnownKind
from app.kit.fastread import json_response
from app.kit.pagination import Page, PageQuery, make_page, paginate
from app.models.kinds import FINAL_STATUSES, JobStatus, Plan
from app.pods import service as pods
from app.readcache.cache import Fresh, ReadCache

router = APIRouter(tags=["jobs"])


@router.get(
    "/v1/pods/{pod_id}/jobs",
    summary="Job history of a pod, newest first",
    responses=error_responses(401, 404, 422),
)
async def list_pod_jobs(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    params: PageQuery,
    kind: Annotated[KnownKind | None, Query()] = None,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
) -> Page[JobRead]:
    await pods.require_visible(session, principal, pod_id)
    stmt = service.list_query(principal, pod_id=pod_id, kind=kind, status=status_)
    rows, total = await paginate(session, stmt, params)
    return make_page([service.to_read(j) for j in rows], total, params)


@router.get(
    "/v1/jobs",
    summary="Jobs of every pod this token sees, newest first",
    responses=error_responses(401, 422),
)
async def list_jobs(
    principal: AnyPrincipal,
    session: DbSession,
    params: PageQuery,
    kind: Annotated[KnownKind | None, Query()] = None,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
) -> Page[JobRead]:
    stmt = service.list_query(principal, kind=kind, status=status_)
    rows, total = await paginate(session, stmt, params)
    return make_page([service.to_read(j) for j in rows], total, params)


@router.get(
    "/v1/jobs/{job_id}",
    summary="One job",
    response_model=JobRead,
    responses=error_responses(401, 404, 422),
)
async def get_job(job_id: uuid.UUID, principal: AnyPrincipal, request: Request) -> Response:
    async def read() -> Fresh:
        job, owner = await service.read_visible_owned(request.app.state.engine, principal, job_id)
        return Fresh(json_response(job), owner, admin_only=job.plan == Plan.PLATFORM)

    cache: ReadCache = request.app.state.read_cache
    return await cache.serve(("job", job_id), job_id, principal, read)


@router.post(
    "/v1/jobs/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel a queued or running job (409 when it has finished)",
    responses=error_responses(401, 404, 409, 422),
)
async def cancel_job(
    job_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
) -> JobRead:
    job = await service.get_visible(session, principal, job_id)
    return service.to_read(await service.cancel(session, redis, settings, job))


_MAX_EVENT_ID = 2**63 - 1  # event ids are bigint
_RECHECK_SECONDS = 2.0


async def _still_allowed(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID
) -> AppError | None:
    """None while the stream's token is active and the job visible to it; else the error."""
    if not await tokens.is_active(session, principal.token_id):
        return Unauthorized("the token was revoked")
    try:
        await service.get_visible(session, principal, job_id)
    except NotFound as exc:
        return exc
    return None


def _sse(event: str, data: object, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


@router.get(
    "/v1/jobs/{job_id}/events",
    summary="Server-Sent Events: progress, log lines and the final state",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "An event stream"},
        **error_responses(401, 404, 422),
    },
)
async def job_events(
    job_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    request: Request,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=_MAX_EVENT_ID,
            description="Resume after this event id (the `id:` of the last event received).",
        ),
    ] = None,
    poll: Annotated[float, Query(ge=0.1, le=10, description="Seconds between polls.")] = 0.5,
) -> StreamingResponse:
    job = await service.get_visible(session, principal, job_id)
    first = service.to_read(job).model_dump(mode="json")
    maker = request.app.state.sessionmaker

    async def stream() -> AsyncIterator[bytes]:
        yield _sse("state", first)
        if job.status in FINAL_STATUSES and last_event_id is None:
            yield _sse("end", {"status": job.status})
            return
        cursor = last_event_id or 0
        idle = 0.0
        checked = time.monotonic()
        try:
            while True:
                async with maker() as s:
                    if time.monotonic() - checked >= _RECHECK_SECONDS:
                        # The stream outlives its request's authentication: a token revoked
                        # (or a job no longer visible to it) ends the stream within seconds.
                        checked = time.monotonic()
                        if (refused := await _still_allowed(s, principal, job_id)) is not None:
                            yield _sse("error", refused.body())
                            return
                    events = await service.events_after(s, job_id, cursor)
                    if not events:
                        current = await service.get_visible(s, principal, job_id)
                        if current.status in FINAL_STATUSES:
                            yield _sse("state", service.to_read(current).model_dump(mode="json"))
                            yield _sse("end", {"status": current.status})
                            return
                for event in events:
                    cursor = event.id
                    yield _sse(event.type, {**event.data, "at": event.at.isoformat()}, event.id)
                    if event.type == "state" and event.data.get("final"):
                        async with maker() as s:
                            current = await service.get_visible(s, principal, job_id)
                            yield _sse("state", service.to_read(current).model_dump(mode="json"))
                        yield _sse("end", {"status": event.data.get("status")})
                        return
                if await request.is_disconnected():
                    return
                if not events:
                    idle += poll
                    if idle >= 15:  # keep proxies from closing an idle stream
                        idle = 0.0
                        yield b": keep-alive\n\n"
                    await asyncio.sleep(poll)
        except NotFound as exc:  # the job (or its pod) was deleted meanwhile
            yield _sse("error", exc.body())

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
