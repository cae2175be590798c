"""Every SQL query of the second copy: its settings row, verification marks, and the lag
of each copy behind its primary (matched by tree and time: `restic copy` gives a copied
snapshot a new id but keeps its tree and time)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.models import CopySettings, Snapshot


async def get(session: AsyncSession, pod_id: uuid.UUID) -> CopySettings | None:
    return await session.get(CopySettings, pod_id)


async def mark_verified(session: AsyncSession, row: CopySettings, ok: bool, at: datetime) -> None:
    """As the owner's: unless the target or secret changed since ``row`` was read."""
    await session.execute(
        update(CopySettings)
        .where(
            CopySettings.pod_id == row.pod_id,
            CopySettings.target == row.target,
            CopySettings.target_secret.is_not_distinct_from(row.target_secret),
        )
        .values(verified_at=at, verified_ok=ok)
        .execution_options(synchronize_session=False)
    )


async def mark_pruned(session: AsyncSession, pod_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(CopySettings).where(CopySettings.pod_id == pod_id).values(pruned_at=at)
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


async def lag(
    conn: AsyncConnection | AsyncSession, pod_id: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, uuid.UUID, int, datetime | None]]:
    """(pod id, account id, snapshots behind, time of the oldest not yet copied) for every
    pod with a second copy, or for ``pod_id`` only."""
    where = "WHERE c.pod_id = :pod_id" if pod_id is not None else ""
    params: dict[str, Any] = {"pod_id": pod_id} if pod_id is not None else {}
    rows = await conn.execute(text(_LAG.format(where=where)), params)
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows.all()]


async def copied_keys(session: AsyncSession, pod_id: uuid.UUID) -> set[tuple[str | None, datetime]]:
    """(tree, time) of every snapshot the copy holds: which primary snapshots it has."""
    rows = await session.execute(
        select(Snapshot.tree, Snapshot.time).where(
            Snapshot.pod_id == pod_id, Snapshot.plan == "copy"
        )
    )
    return {(r[0], r[1]) for r in rows.all()}


def seconds_behind(oldest: datetime | None, now: datetime) -> float:
    """How long a copy has been behind: since its oldest not-yet-copied snapshot."""
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
