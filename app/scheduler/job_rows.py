"""SQL of the jobs a tick creates: one multi-row insert per batch, as
``app.jobs.service.create`` inserts one (same columns, same unique index decides)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import any_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.kinds import EXCLUSIVE_ACTIVE_SQL, JobKind
from app.models import Job
from app.scheduler.repository import active_exclusive, uuid_array

# The index predicate is spelled out literally: with bind parameters, PostgreSQL's generic
# plan (after 5 executions on a connection) cannot infer the partial unique index.
_INSERT_JOBS = f"""
INSERT INTO jobs (id, pod_id, account_id, plan, kind, status, trigger, params, progress,
                  attempt, max_attempts, cancel_requested, created_at)
SELECT u.id, u.pod_id, u.account_id, :plan, u.kind, 'queued', 'schedule', '{{}}'::jsonb,
       '{{"phase": "queued"}}'::jsonb, 1, :max_attempts, false, clock_timestamp()
FROM unnest(CAST(:ids AS uuid[]), CAST(:pods AS uuid[]), CAST(:accounts AS uuid[]),
            CAST(:kinds AS text[])) AS u(id, pod_id, account_id, kind)
ON CONFLICT (pod_id)
    WHERE {EXCLUSIVE_ACTIVE_SQL}
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
    kind: JobKind


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
            Job.pod_id == any_(uuid_array(pod_ids)), *active_exclusive()
        )
    )
    return {pod_id: (kind, plan) for pod_id, kind, plan in rows.all() if pod_id is not None}
