"""Once per interval per shared repository: the pod whose job claims it runs the
repository-wide `restic prune` / `restic check`; the others only do their own part."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import or_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import RepositoryMaintenance


async def claim(
    session: AsyncSession,
    repository: str,
    what: Literal["prune", "check"],
    interval: timedelta,
    now: datetime | None = None,
) -> bool:
    """Atomically take this interval's turn; False when another job already did."""
    now = now or datetime.now(UTC)
    column = (
        RepositoryMaintenance.last_prune_at
        if what == "prune"
        else (RepositoryMaintenance.last_check_at)
    )
    base = insert(RepositoryMaintenance).values(repository=repository, **{column.key: now})
    stmt = base.on_conflict_do_update(
        index_elements=["repository"],
        set_={column.key: now},
        where=or_(column.is_(None), column < now - interval),
    ).returning(RepositoryMaintenance.repository)
    return (await session.scalar(stmt)) is not None
