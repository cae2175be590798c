from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.kinds import Plan
from app.models.types import TextEnum


class PlanState(Base):
    """Per (pod, plan): schedule cursors and the latest outcome, updated with each job."""

    __tablename__ = "plan_states"

    pod_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pods.id", ondelete="CASCADE"), primary_key=True
    )
    plan: Mapped[Plan] = mapped_column(TextEnum(Plan), primary_key=True)
    next_run_at: Mapped[datetime | None] = mapped_column()
    next_prune_at: Mapped[datetime | None] = mapped_column()
    next_check_at: Mapped[datetime | None] = mapped_column()
    check_counter: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_job_id: Mapped[uuid.UUID | None] = mapped_column()
    last_success_at: Mapped[datetime | None] = mapped_column()
    last_snapshot_id: Mapped[str | None] = mapped_column(String(64))
    snapshot_count: Mapped[int] = mapped_column(Integer, default=0)
    repo_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    repo_size_at: Mapped[datetime | None] = mapped_column()
    last_verification: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    stale_alerted_at: Mapped[datetime | None] = mapped_column()
    # The target as the last light probe (or successful backup) found it (app/watch/).
    target_state: Mapped[str | None] = mapped_column(String(16))  # available | unavailable
    target_code: Mapped[str | None] = mapped_column(String(32))
    target_reason: Mapped[str | None] = mapped_column(Text)
    target_hint: Mapped[str | None] = mapped_column(Text)
    target_checked_at: Mapped[datetime | None] = mapped_column()
    target_since: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_plan_states_next_run_at", "next_run_at"),
        Index("ix_plan_states_next_prune_at", "next_prune_at"),
        Index("ix_plan_states_next_check_at", "next_check_at"),
        Index("ix_plan_states_target_checked_at", "target_checked_at"),
    )


class RepoSizeSample(Base):
    """Repository size over time, for growth and cost estimates."""

    __tablename__ = "repo_size_samples"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    pod_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pods.id", ondelete="CASCADE"))
    plan: Mapped[Plan] = mapped_column(TextEnum(Plan))
    at: Mapped[datetime] = mapped_column()
    size_bytes: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_repo_size_samples_pod_plan_at", "pod_id", "plan", "at"),)
