"""Every SQL query on the second copy's settings (the lag is ``plans.repository.copy_lag``:
status, stale detection and the fleet gauges read it from below this room)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CopySettings


async def get(session: AsyncSession, pod_id: uuid.UUID) -> CopySettings | None:
    return await session.get(CopySettings, pod_id)


async def mark_verified(session: AsyncSession, row: CopySettings, ok: bool, at: datetime) -> None:
    """As the owner's: unless the target or secret changed since ``row`` was read."""
    await session.execute(
        update(CopySettings)
        .where(
            CopySettings.pod_id == row.pod_id,
            CopySettings.target == row.target,
            CopySettings.target_secret.is_not_distinct_from(row.target_secret),
        )
        .values(verified_at=at, verified_ok=ok)
        .execution_options(synchronize_session=False)
    )
