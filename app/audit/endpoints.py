"""The audit trail across accounts (admin). A pod's own trail is a route of the pod
(`app/pods/endpoints.py`): the pod decides who may see it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.audit import repository
from app.audit.schemas import ActionQuery, AuditEventRead
from app.auth.dependencies import AdminPrincipal
from app.db import DbSession
from app.errors import error_responses
from app.kit.pagination import Page, PageQuery, make_page, paginate
from app.models import AuditEvent

router = APIRouter(tags=["audit"])


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
