"""Every SQL query of the scheduler. Bulk writes go through ``unnest`` of arrays: one
statement per batch, whatever its size."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, any_, cast, not_, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import BackupSettings, Job, PlanState, Pod
from app.models.job import ACTIVE_STATUSES, EXCLUSIVE_KINDS
from app.scheduler.planning import Cursors

FIRST_ID = uuid.UUID(int=0)


class UnsupportedPlan(ValueError):
    """Only the owner plan has schedules so far (the platform plan comes later)."""


def _check_plan(plan: str) -> None:
    if plan != "owner":
        raise UnsupportedPlan(f"no schedule source for plan {plan!r} yet")


@dataclass(frozen=True)
class SettingsRow:
    """The settings columns planning reads (None columns: the pod has no settings)."""

    pod_id: uuid.UUID
    schedule: dict[str, Any] | None
    retention: dict[str, Any] | None
    verification: dict[str, Any] | None
    verified_ok: bool | None


@dataclass(frozen=True)
class DueRow:
    settings: SettingsRow
    account_id: uuid.UUID
    cursors: Cursors


def _eligible() -> Any:
    return and_(
        BackupSettings.schedule.contains({"enabled": True}),
        BackupSettings.verified_ok.is_(True),
    )


async def unplanned_ids(session: AsyncSession, plan: str) -> list[uuid.UUID]:
    """Enabled, verified pods with a missing cursor, in pod id order.

    Only ids, in one scan: PostgreSQL cannot estimate the JSON conditions, so a keyset
    query with LIMIT would sort the whole match set for every page.
    """
    _check_plan(plan)
    verification_on = not_(BackupSettings.verification.contains({"enabled": False}))
    stmt = (
        select(BackupSettings.pod_id)
        .select_from(BackupSettings)
        .outerjoin(
            PlanState, and_(PlanState.pod_id == BackupSettings.pod_id, PlanState.plan == plan)
        )
        .where(
            _eligible(),
            or_(
                PlanState.next_run_at.is_(None),
                PlanState.next_prune_at.is_(None),
                and_(PlanState.next_check_at.is_(None), verification_on),
            ),
        )
        .order_by(BackupSettings.pod_id)
    )
    return list((await session.scalars(stmt)).all())


async def planning_rows(
    session: AsyncSession, plan: str, pod_ids: Sequence[uuid.UUID]
) -> list[tuple[SettingsRow, Cursors]]:
    """Settings and current cursors of these pods (by primary key)."""
    _check_plan(plan)
    stmt = (
        select(
            BackupSettings.pod_id,
            BackupSettings.schedule,
            BackupSettings.retention,
            BackupSettings.verification,
            BackupSettings.verified_ok,
            PlanState.next_run_at,
            PlanState.next_prune_at,
            PlanState.next_check_at,
        )
        .select_from(BackupSettings)
        .outerjoin(
            PlanState, and_(PlanState.pod_id == BackupSettings.pod_id, PlanState.plan == plan)
        )
        .where(BackupSettings.pod_id == any_(_uuids(pod_ids)))
        .order_by(BackupSettings.pod_id)
    )
    rows = (await session.execute(stmt)).all()
    return [(SettingsRow(r[0], r[1], r[2], r[3], r[4]), Cursors(r[5], r[6], r[7])) for r in rows]


def _uuids(ids: Sequence[uuid.UUID]) -> Any:
    return cast(list(ids), ARRAY(UUID))


async def settings_of(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> SettingsRow | None:
    _check_plan(plan)
    row = await session.get(BackupSettings, pod_id)
    if row is None:
        return None
    return SettingsRow(row.pod_id, row.schedule, row.retention, row.verification, row.verified_ok)


async def lock_cursors(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> Cursors | None:
    """The pod's cursors, row locked until commit (None: no plan_states row yet)."""
    row = (
        await session.execute(
            select(PlanState.next_run_at, PlanState.next_prune_at, PlanState.next_check_at)
            .where(PlanState.pod_id == pod_id, PlanState.plan == plan)
            .with_for_update()
        )
    ).first()
    return Cursors(row[0], row[1], row[2]) if row else None


_WRITE = """
INSERT INTO plan_states
    (pod_id, plan, next_run_at, next_prune_at, next_check_at, check_counter, snapshot_count)
SELECT u.pod_id, :plan, u.r, u.p, u.c, 0, 0
FROM unnest(CAST(:pods AS uuid[]), CAST(:runs AS timestamptz[]),
            CAST(:prunes AS timestamptz[]), CAST(:checks AS timestamptz[])) AS u(pod_id, r, p, c)
ON CONFLICT (pod_id, plan) DO UPDATE SET {sets}
"""
_FILL = ", ".join(f"{c} = COALESCE(plan_states.{c}, excluded.{c})" for c in Cursors.__annotations__)
_OVERWRITE = ", ".join(f"{c} = excluded.{c}" for c in Cursors.__annotations__)


async def write_cursors(
    session: AsyncSession,
    plan: str,
    cursors: Sequence[tuple[uuid.UUID, Cursors]],
    *,
    overwrite: bool,
) -> None:
    """Upsert cursors; without ``overwrite`` only missing (NULL) cursors are filled, so a
    racing planner never moves a cursor a tick has just advanced."""
    if not cursors:
        return
    stmt = text(_WRITE.format(sets=_OVERWRITE if overwrite else _FILL))
    await session.execute(stmt, _arrays(plan, cursors))


_UPDATE = """
UPDATE plan_states AS ps SET next_run_at = u.r, next_prune_at = u.p, next_check_at = u.c
FROM unnest(CAST(:pods AS uuid[]), CAST(:runs AS timestamptz[]),
            CAST(:prunes AS timestamptz[]), CAST(:checks AS timestamptz[])) AS u(pod_id, r, p, c)
WHERE ps.pod_id = u.pod_id AND ps.plan = :plan
"""


async def update_cursors(
    session: AsyncSession, plan: str, cursors: Sequence[tuple[uuid.UUID, Cursors]]
) -> None:
    """Set all three cursors of rows that exist (and that this transaction has locked)."""
    if cursors:
        await session.execute(text(_UPDATE), _arrays(plan, cursors))


def _arrays(plan: str, cursors: Sequence[tuple[uuid.UUID, Cursors]]) -> dict[str, Any]:
    return {
        "plan": plan,
        "pods": [pod_id for pod_id, _ in cursors],
        "runs": [c.next_run_at for _, c in cursors],
        "prunes": [c.next_prune_at for _, c in cursors],
        "checks": [c.next_check_at for _, c in cursors],
    }


async def claim_due(
    session: AsyncSession, plan: str, now: datetime, after: uuid.UUID, limit: int
) -> list[DueRow]:
    """Lock up to ``limit`` rows with a due cursor, in pod id order after ``after``.

    ``SKIP LOCKED``: rows another scheduler holds are left to it, and a row it has already
    advanced is no longer due once its transaction commits. The settings are read in a
    second query by primary key (a join here makes PostgreSQL merge-scan whole tables).
    """
    _check_plan(plan)
    locked = (
        await session.execute(
            select(
                PlanState.pod_id,
                PlanState.next_run_at,
                PlanState.next_prune_at,
                PlanState.next_check_at,
            )
            .where(
                PlanState.plan == plan,
                PlanState.pod_id > after,
                or_(
                    PlanState.next_run_at <= now,
                    PlanState.next_prune_at <= now,
                    PlanState.next_check_at <= now,
                ),
            )
            .order_by(PlanState.pod_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not locked:
        return []
    details = {
        r[0]: r
        for r in (
            await session.execute(
                select(
                    Pod.id,
                    Pod.account_id,
                    BackupSettings.schedule,
                    BackupSettings.retention,
                    BackupSettings.verification,
                    BackupSettings.verified_ok,
                )
                .select_from(Pod)
                .outerjoin(BackupSettings, BackupSettings.pod_id == Pod.id)
                .where(Pod.id == any_(_uuids([r[0] for r in locked])))
            )
        ).all()
    }
    # plan_states rows cascade with their pod, so every locked row has its pod.
    return [
        DueRow(
            SettingsRow(pod_id, *details[pod_id][2:6]),
            details[pod_id][1],
            Cursors(run, prune, check),
        )
        for pod_id, run, prune, check in locked
    ]


_INSERT_JOBS = f"""
INSERT INTO jobs (id, pod_id, account_id, plan, kind, status, trigger, params, progress,
                  attempt, max_attempts, cancel_requested, created_at)
SELECT u.id, u.pod_id, u.account_id, :plan, u.kind, 'queued', 'schedule', '{{}}'::jsonb,
       '{{"phase": "queued"}}'::jsonb, 1, :max_attempts, false, clock_timestamp()
FROM unnest(CAST(:ids AS uuid[]), CAST(:pods AS uuid[]), CAST(:accounts AS uuid[]),
            CAST(:kinds AS text[])) AS u(id, pod_id, account_id, kind)
ON CONFLICT (pod_id)
    WHERE status IN {tuple(ACTIVE_STATUSES)} AND kind IN {tuple(EXCLUSIVE_KINDS)}
    DO NOTHING
RETURNING id
"""

_INSERT_EVENTS = """
INSERT INTO job_events (job_id, at, type, data)
SELECT u.id, clock_timestamp(), 'state', '{"status": "queued", "attempt": 1}'::jsonb
FROM unnest(CAST(:ids AS uuid[])) AS u(id)
"""


@dataclass(frozen=True)
class NewJob:
    id: uuid.UUID
    pod_id: uuid.UUID
    account_id: uuid.UUID
    kind: str


async def insert_jobs(
    session: AsyncSession, plan: str, jobs: Sequence[NewJob], max_attempts: int
) -> set[uuid.UUID]:
    """Insert queued ``schedule`` jobs, as ``app.jobs.service.create`` does one by one (a
    ``queued`` state event each); a pod with an active exclusive job keeps it (the unique
    index decides). Returns the ids actually inserted."""
    if not jobs:
        return set()
    params = {
        "plan": plan,
        "max_attempts": max_attempts,
        "ids": [j.id for j in jobs],
        "pods": [j.pod_id for j in jobs],
        "accounts": [j.account_id for j in jobs],
        "kinds": [j.kind for j in jobs],
    }
    inserted = set((await session.scalars(text(_INSERT_JOBS), params)).all())
    if inserted:
        await session.execute(text(_INSERT_EVENTS), {"ids": list(inserted)})
    return inserted


async def active_jobs(
    session: AsyncSession, pod_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """The active exclusive job of each pod: pod id → (kind, plan)."""
    if not pod_ids:
        return {}
    rows = await session.execute(
        select(Job.pod_id, Job.kind, Job.plan).where(
            Job.pod_id.in_(pod_ids),
            Job.status.in_(ACTIVE_STATUSES),
            Job.kind.in_(EXCLUSIVE_KINDS),
        )
    )
    return {pod_id: (kind, plan) for pod_id, kind, plan in rows.all() if pod_id is not None}
