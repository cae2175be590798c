"""Size overview for status and stats: growth over 30 days and the cost estimate."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import BackupSettings, PlanState
from app.models.kinds import Plan
from app.models.shapes import S3Place
from app.storage import prices, service
from app.storage.schemas import CostEstimateRead, GrowthRead


def provider_of(row: BackupSettings | None, plan: str) -> str | None:
    """The target's provider id for the price table (None: not known)."""
    if plan != Plan.OWNER or row is None:
        return None
    if row.target_kind == "local":
        return "local"
    return row.target.provider if isinstance(row.target, S3Place) else "generic"


async def size_overview(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, state: PlanState | None
) -> tuple[GrowthRead | None, CostEstimateRead | None]:
    """Growth over 30 days and the monthly cost estimate, for status and stats."""
    if state is None or state.repo_size_bytes is None:
        return None, None
    row = await session.get(BackupSettings, pod_id) if plan == Plan.OWNER else None
    provider = provider_of(row, plan)
    growth = await service.growth(session, pod_id, plan)
    estimate = prices.estimate(provider, state.repo_size_bytes) if provider else None
    return GrowthRead.of(growth), CostEstimateRead.of(estimate)
