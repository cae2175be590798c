"""Every SQL query on the audit trail."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select

from app.models import AuditEvent


def list_query(
    *, pod_id: uuid.UUID | None = None, account_id: uuid.UUID | None = None
) -> Select[tuple[AuditEvent]]:
    """Events newest first, of one pod and/or one account."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc())
    if pod_id is not None:
        stmt = stmt.where(AuditEvent.pod_id == pod_id)
    if account_id is not None:
        stmt = stmt.where(AuditEvent.account_id == account_id)
    return stmt
