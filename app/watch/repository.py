"""Every SQL query of the target watch (the ``target_*`` columns of plan_states)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.models import BackupSettings, PlanState, Pod

AVAILABLE = "available"
UNAVAILABLE = "unavailable"


def _scheduled() -> list[ColumnElement[bool]]:
    return [
        BackupSettings.schedule.contains({"enabled": True}),
        BackupSettings.verified_ok.is_(True),
    ]


async def add_missing_states(session: AsyncSession, plan: str) -> int:
    """A plan_states row (no cursors) for every scheduled pod without one, so each has a
    row to lock and mark; returns how many were added."""
    missing = select(BackupSettings.pod_id, literal(plan), literal(0), literal(0)).where(
        *_scheduled(),
        ~exists().where(PlanState.pod_id == BackupSettings.pod_id, PlanState.plan == plan),
    )
    result = await session.execute(
        insert(PlanState)
        .from_select(["pod_id", "plan", "check_counter", "snapshot_count"], missing)
        .on_conflict_do_nothing(index_elements=["pod_id", "plan"])
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _due(now: datetime, every: timedelta, lead: timedelta, retry: timedelta) -> ColumnElement[bool]:
    checked = PlanState.target_checked_at
    return or_(
        checked.is_(None),
        checked < now - every,
        # an unavailable target is looked at more often, so a fix is seen soon
        and_(PlanState.target_state == UNAVAILABLE, checked < now - retry),
        # once within ``lead`` of the next run, unless already probed within it
        and_(
            PlanState.next_run_at.is_not(None),
            PlanState.next_run_at <= now + lead,
            checked < PlanState.next_run_at - lead,
        ),
    )


async def claim_due(
    session: AsyncSession,
    plan: str,
    now: datetime,
    *,
    every: timedelta,
    lead: timedelta,
    retry: timedelta,
    limit: int,
) -> list[tuple[BackupSettings, uuid.UUID]]:
    """Lock (skipping rows another worker holds) up to ``limit`` scheduled pods whose target
    is due for a probe, and lease them (``target_checked_at = now``) so no other pass takes
    them while they are probed: (settings, account id)."""
    ids = list(
        (
            await session.scalars(
                select(PlanState.pod_id)
                .join(BackupSettings, BackupSettings.pod_id == PlanState.pod_id)
                .where(PlanState.plan == plan, *_scheduled(), _due(now, every, lead, retry))
                .order_by(PlanState.target_checked_at.asc().nulls_first(), PlanState.pod_id)
                .limit(limit)
                .with_for_update(of=PlanState, skip_locked=True)
            )
        ).all()
    )
    if not ids:
        return []
    await session.execute(
        update(PlanState)
        .where(PlanState.plan == plan, PlanState.pod_id.in_(ids))
        .values(target_checked_at=now)
    )
    rows = await session.execute(
        select(BackupSettings, Pod.account_id)
        .join(Pod, Pod.id == BackupSettings.pod_id)
        .where(BackupSettings.pod_id.in_(ids))
        .order_by(BackupSettings.pod_id)
    )
    return [(r[0], r[1]) for r in rows.all()]


async def lock_state(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> PlanState | None:
    state: PlanState | None = await session.scalar(
        select(PlanState)
        .where(PlanState.pod_id == pod_id, PlanState.plan == plan)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return state


async def write_state(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, values: dict[str, Any]
) -> None:
    await session.execute(
        update(PlanState).where(PlanState.pod_id == pod_id, PlanState.plan == plan).values(**values)
    )


async def unavailable_counts(conn: AsyncConnection) -> list[tuple[str, int]]:
    """(plan, watched pods whose target the last probe found unavailable) for the fleet
    gauges: a pod no longer watched (settings deleted, schedule off, not verified) no
    longer counts, whatever its last verdict."""
    rows = await conn.execute(
        select(PlanState.plan, func.count())
        .join(BackupSettings, BackupSettings.pod_id == PlanState.pod_id)
        .where(PlanState.target_state == UNAVAILABLE, *_scheduled())
        .group_by(PlanState.plan)
    )
    return [(plan, int(n)) for plan, n in rows.all()]
