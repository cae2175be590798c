"""Every SQL query of the platform plan: the fleet view and shared-repository turns."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PlanState, Pod, RepositoryMaintenance
from app.models.kinds import Plan


async def fleet(
    session: AsyncSession, cutoff: datetime | None, limit: int, offset: int
) -> tuple[list[tuple[Pod, PlanState | None]], int]:
    """One page of pods with a source and their platform state, least recently backed up
    first, and how many there are; ``cutoff``: only those without a success since then."""
    stmt = (
        select(Pod, PlanState)
        .outerjoin(PlanState, and_(PlanState.pod_id == Pod.id, PlanState.plan == Plan.PLATFORM))
        .where(or_(Pod.files.is_not(None), Pod.database.is_not(None)))
        .order_by(PlanState.last_success_at.asc().nulls_first(), Pod.id)
    )
    if cutoff is not None:
        stmt = stmt.where(
            or_(PlanState.last_success_at.is_(None), PlanState.last_success_at < cutoff)
        )
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = (await session.execute(stmt.limit(limit).offset(offset))).all()
    return [(pod, state) for pod, state in rows], int(total or 0)


async def claim_maintenance(
    session: AsyncSession,
    repository: str,
    what: Literal["prune", "check"],
    interval: timedelta,
    now: datetime,
) -> bool:
    """Record ``now`` as the repository's last prune or check unless the last one is within
    ``interval`` (one atomic upsert); False when another job took this interval's turn."""
    column = (
        RepositoryMaintenance.last_prune_at
        if what == "prune"
        else (RepositoryMaintenance.last_check_at)
    )
    due: ColumnElement[bool] = or_(column.is_(None), column < now - interval)
    base = insert(RepositoryMaintenance).values(repository=repository, **{column.key: now})
    stmt = base.on_conflict_do_update(
        index_elements=["repository"],
        set_={column.key: now},
        where=due,
    ).returning(RepositoryMaintenance.repository)
    return (await session.scalar(stmt)) is not None
