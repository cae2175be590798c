"""Once per interval per shared repository: the pod whose job claims it runs the
repository-wide `restic prune` / `restic check`; the others only do their own part."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.platform import repository as platform_rows


async def claim(
    session: AsyncSession,
    repository: str,
    what: Literal["prune", "check"],
    interval: timedelta,
    now: datetime | None = None,
) -> bool:
    """Atomically take this interval's turn; False when another job already did."""
    now = now or datetime.now(UTC)
    return await platform_rows.claim_maintenance(session, repository, what, interval, now)
