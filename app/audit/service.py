"""Audit trail: settings changes, verifications, restore-kit reads, restores, deletions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Principal
from app.models import AuditEvent, Pod


async def record(
    session: AsyncSession,
    action: str,
    *,
    principal: Principal | None = None,
    account_id: uuid.UUID | None = None,
    pod_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> AuditEvent:
    """Add an audit event to the session's transaction (it commits with the change)."""
    event = AuditEvent(
        action=action,
        actor=principal.actor if principal else "system",
        token_id=principal.token_id if principal else None,
        account_id=account_id or (principal.account_id if principal else None),
        pod_id=pod_id,
        detail=detail or {},
        client=client,
    )
    session.add(event)
    await session.flush()
    return event


async def record_for_pod(
    session: AsyncSession,
    principal: Principal,
    pod: Pod,
    action: str,
    detail: dict[str, Any],
    client: str,
) -> AuditEvent:
    """An event about one pod (its account and id), by the request's principal."""
    return await record(
        session,
        action,
        principal=principal,
        account_id=pod.account_id,
        pod_id=pod.id,
        detail=detail,
        client=client,
    )
