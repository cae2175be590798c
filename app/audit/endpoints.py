"""The audit trail: a pod's events (owner or admin) and every event (admin)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from app.audit import repository
from app.auth.dependencies import AdminPrincipal, AnyPrincipal
from app.db import DbSession
from app.errors import error_responses
from app.kit.pagination import Page, PageQuery, make_page, paginate
from app.models import AuditEvent
from app.pods.service import get_visible

router = APIRouter(tags=["audit"])


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    action: str
    actor: str
    account_id: uuid.UUID | None
    pod_id: uuid.UUID | None
    token_id: uuid.UUID | None
    client: str | None
    detail: dict[str, Any]


ActionQuery = Annotated[
    str | None,
    Query(max_length=64, description="Only this action, e.g. `backup_settings.verify`."),
]


@router.get(
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
    pod = await get_visible(session, principal, pod_id)
    stmt = repository.list_query(pod_id=pod.id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    rows, total = await paginate(session, stmt, params)
    return make_page([AuditEventRead.model_validate(r) for r in rows], total, params)


@router.get(
    "/v1/audit",
    summary="Every audit event, newest first (admin)",
    description="Events of deleted pods stay listed (the trail has no foreign keys).",
    responses=error_responses(401, 403, 422),
)
async def all_audit(
    _: AdminPrincipal,
    session: DbSession,
    params: PageQuery,
    account_id: Annotated[uuid.UUID | None, Query(description="Only this account.")] = None,
    pod_id: Annotated[uuid.UUID | None, Query(description="Only this pod.")] = None,
    action: ActionQuery = None,
) -> Page[AuditEventRead]:
    stmt = repository.list_query(pod_id=pod_id, account_id=account_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    rows, total = await paginate(session, stmt, params)
    return make_page([AuditEventRead.model_validate(r) for r in rows], total, params)
