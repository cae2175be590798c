from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from app.audit import repository as audit_events
from app.audit import service as audit
from app.audit.schemas import ActionQuery, AuditEventRead
from app.auth.dependencies import AnyPrincipal, client_address
from app.db import DbSession
from app.deps import KeyringDep, SettingsDep
from app.errors import error_responses
from app.kit.pagination import Page, PageQuery, make_page, paginate
from app.models import AuditEvent
from app.pods import service
from app.pods.schemas import PodCreate, PodRead, PodUpdate

router = APIRouter(tags=["pods"])
# A pod's audit trail is the pod's route (the pod decides who sees it), listed under audit.
audit_router = APIRouter(tags=["audit"])


@router.post(
    "/v1/pods",
    status_code=status.HTTP_201_CREATED,
    summary="Create a pod with its file source, database and hooks",
    responses=error_responses(401, 403, 409, 422),
)
async def create_pod(
    body: PodCreate,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    request: Request,
) -> PodRead:
    pod = await service.create(session, settings, keyring, principal, body)
    await audit.record(
        session,
        "pod.create",
        principal=principal,
        account_id=pod.account_id,
        pod_id=pod.id,
        client=client_address(request),
    )
    return service.to_read(pod)


@router.get("/v1/pods", summary="List pods", responses=error_responses(401, 422))
async def list_pods(
    principal: AnyPrincipal,
    session: DbSession,
    params: PageQuery,
    account_id: Annotated[
        uuid.UUID | None, Query(description="Admin only: pods of this account.")
    ] = None,
) -> Page[PodRead]:
    rows, total = await paginate(session, service.list_query(principal, account_id), params)
    return make_page([service.to_read(p) for p in rows], total, params)


@router.get("/v1/pods/{pod_id}", summary="One pod", responses=error_responses(401, 404, 422))
async def get_pod(pod_id: uuid.UUID, principal: AnyPrincipal, session: DbSession) -> PodRead:
    return service.to_read(await service.get_visible(session, principal, pod_id))


@router.patch(
    "/v1/pods/{pod_id}",
    summary="Change a pod; omitted secrets are kept",
    responses=error_responses(401, 403, 404, 409, 422),
)
async def update_pod(
    pod_id: uuid.UUID,
    body: PodUpdate,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    request: Request,
) -> PodRead:
    pod = await service.get_visible(session, principal, pod_id)
    pod = await service.update(session, settings, keyring, principal, pod, body)
    await audit.record(
        session,
        "pod.update",
        principal=principal,
        account_id=pod.account_id,
        pod_id=pod.id,
        detail={"fields": sorted(body.model_fields_set)},
        client=client_address(request),
    )
    return service.to_read(pod)


@router.delete(
    "/v1/pods/{pod_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a pod and destroy its stored secrets (the bucket's data is untouched)",
    responses=error_responses(401, 404, 422),
)
async def delete_pod(
    pod_id: uuid.UUID, principal: AnyPrincipal, session: DbSession, request: Request
) -> None:
    pod = await service.get_visible(session, principal, pod_id)
    await audit.record(
        session,
        "pod.delete",
        principal=principal,
        account_id=pod.account_id,
        pod_id=pod.id,
        detail={"name": pod.name, "app": pod.app},
        client=client_address(request),
    )
    await session.delete(pod)
    await session.flush()


@audit_router.get(
    "/v1/pods/{pod_id}/audit",
    summary="The pod's audit trail, newest first",
    responses=error_responses(401, 404, 422),
)
async def pod_audit(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    params: PageQuery,
    action: ActionQuery = None,
) -> Page[AuditEventRead]:
    pod = await service.get_visible(session, principal, pod_id)
    stmt = audit_events.list_query(pod_id=pod.id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    rows, total = await paginate(session, stmt, params)
    return make_page([AuditEventRead.model_validate(r) for r in rows], total, params)
