"""Every SQL query on exports."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Export


async def mark_ready(
    session: AsyncSession,
    export_id: uuid.UUID,
    *,
    size_bytes: int,
    sha256: str,
    storage_key: str,
    expires_at: datetime,
    ready_at: datetime,
    snapshot_id: str | None,
) -> None:
    await session.execute(
        update(Export)
        .where(Export.id == export_id)
        .values(
            status="ready",
            size_bytes=size_bytes,
            sha256=sha256,
            storage_key=storage_key,
            expires_at=expires_at,
            ready_at=ready_at,
            snapshot_id=snapshot_id,
        )
    )


async def mark_failed(session: AsyncSession, export_id: uuid.UUID) -> None:
    await session.execute(update(Export).where(Export.id == export_id).values(status="failed"))


async def lock_expired(session: AsyncSession, now: datetime, limit: int) -> Sequence[Export]:
    """Ready exports past their expiry, locked; rows another worker holds are skipped."""
    rows = await session.scalars(
        select(Export)
        .where(Export.status == "ready", Export.expires_at < now)
        .with_for_update(skip_locked=True)
        .limit(limit)
    )
    return rows.all()


async def live_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Of ``ids``, the exports still building or ready: their archives are wanted."""
    if not ids:
        return set()
    rows = await session.scalars(
        select(Export.id).where(Export.id.in_(ids), Export.status.in_(("pending", "ready")))
    )
    return set(rows.all())
