"""Every SQL query of stale-backup detection (plan_states rows of scheduled pods)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import BackupSettings, PlanState, Pod


def _scheduled() -> list[ColumnElement[bool]]:
    return [
        BackupSettings.schedule.contains({"enabled": True}),
        BackupSettings.verified_ok.is_(True),
    ]


async def add_missing_states(session: AsyncSession, plan: str, cutoff: datetime) -> int:
    """Insert a plan_states row (no cursors) for every scheduled pod whose settings predate
    ``cutoff`` and that has none for ``plan``; returns how many were added."""
    missing = select(BackupSettings.pod_id, literal(plan), literal(0), literal(0)).where(
        *_scheduled(),
        BackupSettings.created_at < cutoff,
        ~exists().where(PlanState.pod_id == BackupSettings.pod_id, PlanState.plan == plan),
    )
    result = await session.execute(
        insert(PlanState)
        .from_select(["pod_id", "plan", "check_counter", "snapshot_count"], missing)
        .on_conflict_do_nothing(index_elements=["pod_id", "plan"])
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def claim_stale(
    session: AsyncSession, plan: str, cutoff: datetime, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID, datetime | None, datetime]]:
    """Lock (skipping rows another worker holds) up to ``limit`` scheduled, not yet alerted
    plan states without a success since ``cutoff``: (pod id, account id, last success,
    settings created)."""
    rows = await session.execute(
        select(
            PlanState.pod_id,
            Pod.account_id,
            PlanState.last_success_at,
            BackupSettings.created_at,
        )
        .join(BackupSettings, BackupSettings.pod_id == PlanState.pod_id)
        .join(Pod, Pod.id == PlanState.pod_id)
        .where(
            PlanState.plan == plan,
            PlanState.stale_alerted_at.is_(None),
            *_scheduled(),
            func.coalesce(PlanState.last_success_at, BackupSettings.created_at) < cutoff,
        )
        .order_by(PlanState.pod_id)
        .limit(limit)
        .with_for_update(of=PlanState, skip_locked=True)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows.all()]


async def mark_alerted(
    session: AsyncSession, plan: str, pod_ids: Sequence[uuid.UUID], at: datetime
) -> None:
    await session.execute(
        update(PlanState)
        .where(
            and_(
                PlanState.plan == plan,
                PlanState.pod_id.in_(list(pod_ids)),
            )
        )
        .values(stale_alerted_at=at)
    )
