"""Storage reads: size samples, growth, cost estimate."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.storage.prices import Estimate
from app.storage.service import Growth


class SizeSample(BaseModel):
    at: datetime
    size_bytes: int


class GrowthRead(BaseModel):
    bytes: int = Field(description="Size change (negative after a prune freed space).")
    since: datetime
    until: datetime
    days: float = Field(description="The span actually covered (shorter with a young history).")
    bytes_per_day: float

    @classmethod
    def of(cls, growth: Growth | None) -> GrowthRead | None:
        if growth is None:
            return None
        return cls(
            bytes=growth.bytes,
            since=growth.since,
            until=growth.until,
            days=growth.days,
            bytes_per_day=round(growth.bytes_per_day, 1),
        )


class CostEstimateRead(BaseModel):
    provider: str = Field(description="aws | b2 | idrive_e2 | oci | generic | local")
    provider_name: str
    usd_per_tb_month: float | None = Field(description="List price used; null when unknown.")
    monthly_usd: float | None = Field(
        description="Estimated monthly storage charge for the current size; null when unknown."
    )
    free_bytes: int = Field(description="Free allowance subtracted (B2: 10 GB).")
    note: str

    @classmethod
    def of(cls, est: Estimate | None) -> CostEstimateRead | None:
        if est is None:
            return None
        return cls(
            provider=est.provider,
            provider_name=est.provider_name,
            usd_per_tb_month=est.usd_per_tb_month,
            monthly_usd=est.monthly_usd,
            free_bytes=est.free_bytes,
            note=est.note,
        )


class PodStats(BaseModel):
    pod_id: uuid.UUID
    plan: str
    provider: str | None
    repository_size_bytes: int | None = Field(
        description="`restic stats --mode raw-data`: the stored (compressed) data."
    )
    repository_size_at: datetime | None
    snapshot_count: int
    growth_30d: GrowthRead | None = Field(
        description="Size change over the last 30 days; null until the samples span a day."
    )
    cost_estimate: CostEstimateRead | None
    samples: list[SizeSample] = Field(description="Oldest first, within the requested days.")
