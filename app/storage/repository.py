"""Every SQL query on repository size samples."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import RepoSizeSample


async def add_sample(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, at: datetime, size: int
) -> None:
    await session.execute(
        insert(RepoSizeSample).values(pod_id=pod_id, plan=plan, at=at, size_bytes=size)
    )


async def delete_before(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, before: datetime
) -> None:
    await session.execute(
        delete(RepoSizeSample).where(
            RepoSizeSample.pod_id == pod_id,
            RepoSizeSample.plan == plan,
            RepoSizeSample.at < before,
        )
    )


async def newest_since(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, since: datetime, limit: int
) -> list[RepoSizeSample]:
    """The newest ``limit`` samples since ``since``, newest first."""
    rows = await session.scalars(
        select(RepoSizeSample)
        .where(
            RepoSizeSample.pod_id == pod_id,
            RepoSizeSample.plan == plan,
            RepoSizeSample.at >= since,
        )
        .order_by(RepoSizeSample.at.desc(), RepoSizeSample.id.desc())
        .limit(limit)
    )
    return list(rows.all())


async def newest_at_or_before(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, at: datetime
) -> RepoSizeSample | None:
    row: RepoSizeSample | None = await session.scalar(
        select(RepoSizeSample)
        .where(
            RepoSizeSample.pod_id == pod_id, RepoSizeSample.plan == plan, RepoSizeSample.at <= at
        )
        .order_by(RepoSizeSample.at.desc(), RepoSizeSample.id.desc())
        .limit(1)
    )
    return row


async def oldest_after(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, after: datetime
) -> RepoSizeSample | None:
    row: RepoSizeSample | None = await session.scalar(
        select(RepoSizeSample)
        .where(
            RepoSizeSample.pod_id == pod_id, RepoSizeSample.plan == plan, RepoSizeSample.at > after
        )
        .order_by(RepoSizeSample.at, RepoSizeSample.id)
        .limit(1)
    )
    return row
