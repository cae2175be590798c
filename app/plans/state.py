"""Every SQL query on plan_states (the per-pod, per-plan outcome and schedule cursors)
that is not a scheduler query."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PlanState, Snapshot


async def upsert(session: AsyncSession, pod_id: uuid.UUID, plan: str, **values: Any) -> None:
    stmt = insert(PlanState).values(pod_id=pod_id, plan=plan, **values)
    if values:
        stmt = stmt.on_conflict_do_update(
            index_elements=["pod_id", "plan"], set_={k: stmt.excluded[k] for k in values}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["pod_id", "plan"])
    await session.execute(stmt)


async def get(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> PlanState | None:
    return await session.get(PlanState, (pod_id, plan))


async def last_snapshot_id(
    session: AsyncSession, pod_id: uuid.UUID | None, plan: str
) -> str | None:
    """The newest snapshot on record for (pod, plan): a backup's parent."""
    if pod_id is None:
        return None
    state = await get(session, pod_id, plan)
    return state.last_snapshot_id if state else None


async def snapshot_count(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> int:
    """How many snapshots of (pod, plan) are on record."""
    n = await session.scalar(
        select(func.count())
        .select_from(Snapshot)
        .where(Snapshot.pod_id == pod_id, Snapshot.plan == plan)
    )
    return int(n or 0)
