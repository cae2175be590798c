"""SQL of the scheduler's cursors (plan_states) and the settings they are planned from.
Bulk writes go through ``unnest`` of arrays: one statement per batch, whatever its size.
The job rows a tick inserts are in ``app.jobs.repository``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, any_, cast, literal, not_, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.repository import active_exclusive
from app.models import BackupSettings, Job, PlanState, Pod
from app.models.kinds import Plan
from app.scheduler.planning import Cursors

FIRST_ID = uuid.UUID(int=0)


class UnsupportedPlan(ValueError):
    """A plan without a schedule source (the platform plan needs its operator settings)."""


@dataclass(frozen=True)
class PlatformPlan:
    """The operator's schedule for the platform plan: the same for every pod with data."""

    window_start: str
    window_end: str
    timezone: str
    prune_days: int
    check_days: int

    def columns(self) -> list[Any]:
        """The same columns as the owner plan's settings, as constants."""
        return [
            literal("true"),
            literal(self.window_start),
            literal(self.window_end),
            literal(self.timezone),
            literal(str(self.prune_days)),
            literal("true"),
            literal(str(self.check_days)),
            literal(True),
        ]


def _check_plan(plan: str, platform: PlatformPlan | None = None) -> None:
    if plan == Plan.OWNER and platform is None:
        return
    if plan == Plan.PLATFORM and platform is not None:
        return
    raise UnsupportedPlan(f"no schedule source for plan '{plan}'")


def _source(platform: PlatformPlan | None) -> tuple[Any, Any, list[Any], list[Any]]:
    """(table, pod id column, settings columns, eligibility) of the plan's schedule source:
    the owner's settings rows, or — for the platform plan — every pod holding data."""
    if platform is None:
        return BackupSettings, BackupSettings.pod_id, _settings_columns(), _unplanned_owner()
    has_data = or_(Pod.files.is_not(None), Pod.database.is_not(None))
    return Pod, Pod.id, platform.columns(), [has_data, _missing_cursor()]


@dataclass(frozen=True)
class SettingsRow:
    """The settings columns planning reads (None columns: the pod has no settings)."""

    pod_id: uuid.UUID
    schedule: dict[str, Any] | None
    retention: dict[str, Any] | None
    verification: dict[str, Any] | None
    verified_ok: bool | None


def _settings_columns() -> list[Any]:
    """The settings fields planning reads, as text: no JSON decoding of whole documents."""
    sched, ret, ver = BackupSettings.schedule, BackupSettings.retention, BackupSettings.verification
    return [
        sched["enabled"].astext,
        sched["window_start"].astext,
        sched["window_end"].astext,
        sched["timezone"].astext,
        ret["prune_interval_days"].astext,
        ver["enabled"].astext,
        ver["interval_days"].astext,
        BackupSettings.verified_ok,
    ]


def _settings_row(pod_id: uuid.UUID, values: Sequence[Any]) -> SettingsRow:
    enabled, start, end, zone, prune_days, check_on, check_days, verified_ok = values
    verification: dict[str, Any] = {"interval_days": _int(check_days)}
    if check_on == "false":
        verification["enabled"] = False
    return SettingsRow(
        pod_id,
        {"enabled": enabled == "true", "window_start": start, "window_end": end, "timezone": zone},
        {"prune_interval_days": _int(prune_days)},
        verification,
        verified_ok,
    )


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() else None


@dataclass(frozen=True)
class DueRow:
    settings: SettingsRow
    account_id: uuid.UUID
    cursors: Cursors
    active: tuple[str, str] | None  # (kind, plan) of the pod's active exclusive job


def _missing_cursor(verification_on: Any = True) -> Any:
    return or_(
        PlanState.next_run_at.is_(None),
        PlanState.next_prune_at.is_(None),
        and_(PlanState.next_check_at.is_(None), verification_on),
    )


def _unplanned_owner() -> list[Any]:
    """Enabled and verified, with a cursor missing (check only while verification is on)."""
    verification_on = not_(BackupSettings.verification.contains({"enabled": False}))
    return [
        BackupSettings.schedule.contains({"enabled": True}),
        BackupSettings.verified_ok.is_(True),
        _missing_cursor(verification_on),
    ]


async def unplanned_ids(
    session: AsyncSession, plan: str, platform: PlatformPlan | None = None
) -> list[uuid.UUID]:
    """Schedulable pods with a missing cursor, in pod id order.

    Only ids, in one scan: PostgreSQL cannot estimate the JSON conditions, so a keyset
    query with LIMIT would sort the whole match set for every page.
    """
    _check_plan(plan, platform)
    table, pod_id, _, eligible = _source(platform)
    stmt = (
        select(pod_id)
        .select_from(table)
        .outerjoin(PlanState, and_(PlanState.pod_id == pod_id, PlanState.plan == plan))
        .where(*eligible)
        .order_by(pod_id)
    )
    return list((await session.scalars(stmt)).all())


async def planning_rows(
    session: AsyncSession,
    plan: str,
    first: uuid.UUID,
    last: uuid.UUID,
    platform: PlatformPlan | None = None,
) -> list[tuple[SettingsRow, Cursors]]:
    """Settings and current cursors of the unplanned pods with ids in [first, last] (a
    range scan of the primary key; ``= ANY(ids)`` of thousands made PostgreSQL hash-join
    the whole table for every batch)."""
    _check_plan(plan, platform)
    table, pod_id, columns, eligible = _source(platform)
    stmt = (
        select(
            pod_id,
            PlanState.next_run_at,
            PlanState.next_prune_at,
            PlanState.next_check_at,
            *columns,
        )
        .select_from(table)
        .outerjoin(PlanState, and_(PlanState.pod_id == pod_id, PlanState.plan == plan))
        .where(pod_id.between(first, last), *eligible)
        .order_by(pod_id)
    )
    rows = (await session.execute(stmt)).all()
    return [(_settings_row(r[0], r[4:]), Cursors(r[1], r[2], r[3])) for r in rows]


def uuid_array(ids: Sequence[uuid.UUID]) -> Any:
    return cast(list(ids), ARRAY(UUID))


async def settings_of(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, platform: PlatformPlan | None = None
) -> SettingsRow | None:
    _check_plan(plan, platform)
    if platform is not None:
        pod = await session.get(Pod, pod_id)
        if pod is None or not (pod.files or pod.database):
            return None
        values = (await session.execute(select(*platform.columns()))).one()
        return _settings_row(pod_id, values)
    row = await session.get(BackupSettings, pod_id)
    if row is None:
        return None
    return SettingsRow(
        row.pod_id,
        row.schedule.model_dump(exclude_unset=True),
        row.retention.model_dump(exclude_unset=True),
        row.verification.model_dump(exclude_unset=True),
        row.verified_ok,
    )


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
    session: AsyncSession,
    plan: str,
    now: datetime,
    after: uuid.UUID,
    limit: int,
    platform: PlatformPlan | None = None,
) -> list[DueRow]:
    """Lock up to ``limit`` rows with a due cursor, in pod id order after ``after``.

    ``SKIP LOCKED``: rows another scheduler holds are left to it, and a row it has already
    advanced is no longer due once its transaction commits. The settings are read in a
    second query by primary key (a join here makes PostgreSQL merge-scan whole tables).
    """
    _check_plan(plan, platform)
    columns = platform.columns() if platform is not None else _settings_columns()
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
    # Read with the settings, the active exclusive job makes a busy pod known without
    # inserting: an insert would wait on a job row another transaction is finishing.
    details = {
        r[0]: r
        for r in (
            await session.execute(
                select(Pod.id, Pod.account_id, Job.kind, Job.plan, *columns)
                .select_from(Pod)
                .outerjoin(BackupSettings, BackupSettings.pod_id == Pod.id)
                .outerjoin(Job, and_(Job.pod_id == Pod.id, *active_exclusive()))
                .where(Pod.id == any_(uuid_array([r[0] for r in locked])))
            )
        ).all()
    }
    # plan_states rows cascade with their pod, so every locked row has its pod.
    return [
        DueRow(
            _settings_row(pod_id, details[pod_id][4:]),
            details[pod_id][1],
            Cursors(run, prune, check),
            (details[pod_id][2], details[pod_id][3]) if details[pod_id][2] else None,
        )
        for pod_id, run, prune, check in locked
    ]
