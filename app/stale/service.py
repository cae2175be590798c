"""Stale-backup detection: a pod whose schedule is on (enabled, verified settings) and whose
last successful backup (or, before the first one, its settings' creation) is older than
``stale_after_hours`` (the nightly interval plus a margin, 26 h by default) raises
``backup.stale`` once. ``plan_states.stale_alerted_at`` remembers the alert; the backup
pipeline clears it on the next success, so a later lapse alerts again.

Any number of workers may run a pass at once: rows are claimed ``FOR UPDATE SKIP LOCKED``
in batches, and the alert is written in the transaction that marks the row.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import commit
from app.models import BackupSettings, PlanState, Pod
from app.webhooks.events import emit

log = logging.getLogger(__name__)

PLAN = "owner"  # the platform plan has its own fleet view for operators


@dataclass
class StaleResult:
    alerted: int = 0
    rows_added: int = 0


def _scheduled() -> list[ColumnElement[bool]]:
    return [
        BackupSettings.schedule.contains({"enabled": True}),
        BackupSettings.verified_ok.is_(True),
    ]


async def _add_missing_rows(session: AsyncSession, cutoff: datetime) -> int:
    """A pod never planned or backed up has no plan_states row to lock and mark: add one
    (no cursors: the scheduler plans it as it would have)."""
    missing = select(BackupSettings.pod_id, literal(PLAN), literal(0), literal(0)).where(
        *_scheduled(),
        BackupSettings.created_at < cutoff,
        ~exists().where(PlanState.pod_id == BackupSettings.pod_id, PlanState.plan == PLAN),
    )
    result = await session.execute(
        insert(PlanState)
        .from_select(["pod_id", "plan", "check_counter", "snapshot_count"], missing)
        .on_conflict_do_nothing(index_elements=["pod_id", "plan"])
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _claim(
    session: AsyncSession, cutoff: datetime, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID, datetime | None, datetime]]:
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
            PlanState.plan == PLAN,
            PlanState.stale_alerted_at.is_(None),
            *_scheduled(),
            func.coalesce(PlanState.last_success_at, BackupSettings.created_at) < cutoff,
        )
        .order_by(PlanState.pod_id)
        .limit(limit)
        .with_for_update(of=PlanState, skip_locked=True)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows.all()]


async def detect(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> StaleResult:
    """One pass: alert every stale, not yet alerted pod once. Returns the counts."""
    hours = settings.stale_after_hours
    cutoff = now - timedelta(hours=hours)
    result = StaleResult()
    async with sessionmaker() as session:
        result.rows_added = await _add_missing_rows(session, cutoff)
        await commit(session)
    while True:
        async with sessionmaker() as session:
            rows = await _claim(session, cutoff, settings.stale_batch_size)
            for pod_id, account_id, last_success, created in rows:
                since = last_success or created
                await emit(
                    session,
                    account_id,
                    "backup.stale",
                    {
                        "pod_id": str(pod_id),
                        "plan": PLAN,
                        "last_success_at": last_success.isoformat() if last_success else None,
                        "since": since.isoformat(),
                        "hours_without_success": round((now - since).total_seconds() / 3600, 1),
                        "threshold_hours": hours,
                    },
                )
            if rows:
                await session.execute(
                    update(PlanState)
                    .where(
                        and_(
                            PlanState.plan == PLAN,
                            PlanState.pod_id.in_([r[0] for r in rows]),
                        )
                    )
                    .values(stale_alerted_at=now)
                )
            await commit(session)
        result.alerted += len(rows)
        if len(rows) < settings.stale_batch_size:
            break
    if result.alerted:
        log.info("stale detection: %d pod(s) without a recent successful backup", result.alerted)
    return result
