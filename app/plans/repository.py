"""Every SQL query on plan_states (the per-pod, per-plan outcome and schedule cursors)
that is not a scheduler query."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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


async def last_status_counts(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """(plan, status of the last backup or 'never', pods) for the fleet gauges."""
    rows = await conn.execute(
        text(
            """SELECT plan, coalesce(last_status, 'never'), count(*) FROM plan_states
               GROUP BY plan, coalesce(last_status, 'never')"""
        )
    )
    return [(plan, status, n) for plan, status, n in rows.all()]


async def stale_counts(conn: AsyncConnection) -> list[tuple[str, int]]:
    """(plan, scheduled pods without a success in 26 hours) for the fleet gauges."""
    rows = await conn.execute(
        text(
            """SELECT plan, count(*) FROM plan_states
               WHERE next_run_at IS NOT NULL
                 AND (last_success_at IS NULL OR last_success_at < now() - interval '26 hours')
               GROUP BY plan"""
        )
    )
    return [(plan, n) for plan, n in rows.all()]


async def past_rpo_counts(conn: AsyncConnection) -> list[tuple[str, int]]:
    """(plan, pods whose `backup.stale` is raised and not yet cleared by a success); the
    copy plan's mark is `copy.lagging` (``copies_lagging_count``)."""
    rows = await conn.execute(
        text(
            """SELECT plan, count(*) FROM plan_states WHERE stale_alerted_at IS NOT NULL
               AND plan <> 'copy' GROUP BY plan"""
        )
    )
    return [(plan, int(n)) for plan, n in rows.all()]


async def copies_lagging_count(conn: AsyncConnection) -> int:
    """Pods whose `copy.lagging` is raised and not yet cleared by a successful copy."""
    n = await conn.scalar(
        text(
            "SELECT count(*) FROM plan_states WHERE plan = 'copy' AND stale_alerted_at IS NOT NULL"
        )
    )
    return int(n or 0)


async def size_totals(conn: AsyncConnection) -> list[tuple[str, int, int]]:
    """(plan, repositories measured, their summed size in bytes) for the fleet gauges."""
    rows = await conn.execute(
        text(
            """SELECT plan, count(repo_size_bytes), coalesce(sum(repo_size_bytes), 0)
               FROM plan_states GROUP BY plan"""
        )
    )
    return [(plan, int(n), int(size)) for plan, n, size in rows.all()]


async def advance_check_counter(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> None:
    """The rotating read-data check moves on to its next subset."""
    stmt = insert(PlanState).values(pod_id=pod_id, plan=plan, check_counter=1, snapshot_count=0)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["pod_id", "plan"],
            set_={"check_counter": PlanState.check_counter + 1},
        )
    )


# Per pod with a copy: primary snapshots newer than the copy's newest one (by tree and
# time), how many, and the time of the oldest of them.
_LAG = """
WITH newest_copy AS (
    SELECT c.pod_id, max(s.time) AS at
    FROM copy_settings c
    LEFT JOIN snapshots s ON s.pod_id = c.pod_id AND s.plan = 'copy'
    {where}
    GROUP BY c.pod_id
)
SELECT n.pod_id, p.account_id, count(o.pk) AS behind, min(o.time) AS oldest
FROM newest_copy n
JOIN pods p ON p.id = n.pod_id
LEFT JOIN snapshots o ON o.pod_id = n.pod_id AND o.plan = 'owner'
    AND (n.at IS NULL OR o.time > n.at)
GROUP BY n.pod_id, p.account_id
"""


async def copy_lag(
    conn: AsyncConnection | AsyncSession, pod_id: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, uuid.UUID, int, datetime | None]]:
    """(pod id, account id, snapshots behind, time of the oldest not yet copied) for every
    pod with a second copy, or for ``pod_id`` only."""
    where = "WHERE c.pod_id = :pod_id" if pod_id is not None else ""
    params: dict[str, Any] = {"pod_id": pod_id} if pod_id is not None else {}
    rows = await conn.execute(text(_LAG.format(where=where)), params)
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows.all()]


def seconds_behind(oldest: datetime | None, now: datetime) -> float:
    """How long a copy has been behind: since its oldest not-yet-copied snapshot."""
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
