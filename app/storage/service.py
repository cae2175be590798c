"""Repository size: measured with `restic stats --mode raw-data` after backups and prunes,
kept as samples for growth and cost estimates.

Measuring costs about a second (restic opens the repository and reads its index), so it
runs at the end of a job, after the main work, and never fails that job: an error is
logged on the job and the size is simply not updated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models import RepoSizeSample
from app.models.base import utcnow
from app.plans import repository as plan_states
from app.storage import repository

GROWTH_DAYS = 30
# A shorter history gives no daily rate: two samples 9 minutes apart (a first backup and
# the next) were once extrapolated to 157 GB/day. Until the samples span a day: unknown.
MIN_GROWTH_DAYS = 1.0
# An unchanged backup re-measures the repository at most this often.
SIZE_REFRESH = timedelta(days=1)


@dataclass(frozen=True)
class Growth:
    bytes: int
    since: datetime
    until: datetime
    days: float

    @property
    def bytes_per_day(self) -> float:
        return self.bytes / self.days if self.days > 0 else 0.0

    @classmethod
    def between(
        cls, base_at: datetime, base_bytes: int, latest_at: datetime, latest_bytes: int
    ) -> Growth | None:
        """The change from one sample to a later one; None when they span less than
        ``MIN_GROWTH_DAYS``."""
        span = (latest_at - base_at).total_seconds() / 86400
        if span < MIN_GROWTH_DAYS:
            return None
        return cls(latest_bytes - base_bytes, base_at, latest_at, round(span, 3))


def size_due(summary: dict[str, Any], measured_at: datetime | None, now: datetime) -> bool:
    """Whether a backup with this summary is followed by `restic stats` (~0.7 s of restic).

    A backup that stored nothing (``data_added`` 0: no new blob, so the stored data is the
    same) leaves the size as measured; it is measured again once the last sample is a day
    old, for the growth history and for changes made outside the service."""
    added = summary.get("data_added")
    if not isinstance(added, int) or added > 0 or measured_at is None:
        return True
    return now - measured_at >= SIZE_REFRESH


async def record_size(
    session: AsyncSession,
    pod_id: uuid.UUID,
    plan: str,
    size: int,
    settings: Settings,
    at: datetime | None = None,
) -> None:
    """Append a sample, show it in the plan's state, and drop samples past the history."""
    at = at or utcnow()
    await repository.add_sample(session, pod_id, plan, at, size)
    await plan_states.upsert(session, pod_id, plan, repo_size_bytes=size, repo_size_at=at)
    await repository.delete_before(
        session, pod_id, plan, at - timedelta(days=settings.repo_size_history_days)
    )


async def samples(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, since: datetime, limit: int
) -> list[RepoSizeSample]:
    """The newest ``limit`` samples since ``since``, oldest first."""
    rows = await repository.newest_since(session, pod_id, plan, since, limit)
    return list(reversed(rows))


async def growth(
    session: AsyncSession,
    pod_id: uuid.UUID,
    plan: str,
    now: datetime | None = None,
    days: int = GROWTH_DAYS,
) -> Growth | None:
    """Size change over the last ``days``: the newest sample minus the newest one at least
    that old (or, with a shorter history, the oldest one). None with fewer than 2 samples
    or less than a day between them."""
    now = now or utcnow()
    latest = await repository.newest_at_or_before(session, pod_id, plan, now)
    if latest is None:
        return None
    cutoff = now - timedelta(days=days)
    base = await repository.newest_at_or_before(session, pod_id, plan, cutoff)
    if base is None:
        base = await repository.oldest_after(session, pod_id, plan, cutoff)
    if base is None or base.id == latest.id:
        return None
    return Growth.between(base.at, base.size_bytes, latest.at, latest.size_bytes)
