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
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import commit
from app.models.kinds import Plan
from app.plans import repository as plan_states
from app.stale import repository
from app.webhooks.events import emit

log = logging.getLogger(__name__)

PLAN = "owner"  # the platform plan has its own fleet view for operators


@dataclass
class StaleResult:
    alerted: int = 0
    rows_added: int = 0
    copies_alerted: int = 0


async def detect(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> StaleResult:
    """One pass: alert every stale, not yet alerted pod once. Returns the counts."""
    hours = settings.stale_after_hours
    cutoff = now - timedelta(hours=hours)
    result = StaleResult()
    async with sessionmaker() as session:
        # A pod never planned or backed up has no plan_states row to lock and mark: add one
        # (no cursors: the scheduler plans it as it would have).
        result.rows_added = await repository.add_missing_states(session, PLAN, cutoff)
        await commit(session)
    while True:
        async with sessionmaker() as session:
            rows = await repository.claim_stale(session, PLAN, cutoff, settings.stale_batch_size)
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
                await repository.mark_alerted(session, PLAN, [r[0] for r in rows], now)
            await commit(session)
        result.alerted += len(rows)
        if len(rows) < settings.stale_batch_size:
            break
    if result.alerted:
        log.info("stale detection: %d pod(s) without a recent successful backup", result.alerted)
    result.copies_alerted = await detect_copy_lag(sessionmaker, settings, now)
    return result


async def detect_copy_lag(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> int:
    """`copy.lagging` once per lapse: a second copy whose oldest snapshot not yet copied is
    older than ``copy_lag_alert_hours``. The copy job clears the mark when it succeeds."""
    limit = settings.copy_lag_alert_hours
    alerted = 0
    async with sessionmaker() as session:
        for pod_id, account_id, behind, oldest in await plan_states.copy_lag(session):
            if oldest is None or (now - oldest).total_seconds() <= limit * 3600:
                continue
            state = await plan_states.get(session, pod_id, Plan.COPY)
            if state is not None and state.stale_alerted_at is not None:
                continue
            await emit(
                session,
                account_id,
                "copy.lagging",
                {
                    "pod_id": str(pod_id),
                    "plan": Plan.COPY.value,
                    "snapshots_behind": behind,
                    "oldest_not_copied": oldest.isoformat(),
                    "hours_behind": round((now - oldest).total_seconds() / 3600, 1),
                    "threshold_hours": limit,
                    "last_copy_at": (
                        state.last_success_at.isoformat()
                        if state and state.last_success_at
                        else None
                    ),
                },
            )
            await plan_states.upsert(session, pod_id, Plan.COPY, stale_alerted_at=now)
            alerted += 1
        await commit(session)
    if alerted:
        log.info("copy lag: %d pod(s) whose second copy is behind", alerted)
    return alerted
