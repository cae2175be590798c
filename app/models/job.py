from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, utcnow
from app.models.kinds import (
    ACTIVE_STATUSES,
    EXCLUSIVE_ACTIVE_SQL,
    JobKind,
    JobStatus,
    Plan,
    sql_list,
)
from app.models.shapes import JobError, JobParams, JobProgress
from app.models.types import Stored, TextEnum


class Job(IdMixin, Base):
    """Every long operation. Postgres is the record; Redis (arq) only carries the id."""

    __tablename__ = "jobs"

    pod_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("pods.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    plan: Mapped[Plan] = mapped_column(TextEnum(Plan), default=Plan.OWNER)
    kind: Mapped[JobKind] = mapped_column(TextEnum(JobKind))
    status: Mapped[JobStatus] = mapped_column(TextEnum(JobStatus), default=JobStatus.QUEUED)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    params: Mapped[JobParams] = mapped_column(Stored(JobParams), default=dict)
    progress: Mapped[JobProgress] = mapped_column(Stored(JobProgress), default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # free-form, per kind
    error: Mapped[JobError | None] = mapped_column(Stored(JobError))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    run_after: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_jobs_pod_created", "pod_id", "created_at"),
        Index(
            "ix_jobs_active",
            "status",
            postgresql_where=text(f"status IN {sql_list(ACTIVE_STATUSES)}"),
        ),
        # One exclusive job per pod at a time; enforced by the database, not by luck.
        Index(
            "uq_jobs_one_exclusive_per_pod",
            "pod_id",
            unique=True,
            postgresql_where=text(EXCLUSIVE_ACTIVE_SQL),
        ),
    )


class JobEvent(Base):
    """Log lines, progress samples and state changes of a job, for its event stream."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(16))  # log | progress | state
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)

    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)
