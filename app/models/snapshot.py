from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.kinds import Plan
from app.models.types import TextEnum


class Snapshot(Base):
    """A restic snapshot of one pod's repository, as confirmed in the repository."""

    __tablename__ = "snapshots"

    pk: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    pod_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pods.id", ondelete="CASCADE"))
    plan: Mapped[Plan] = mapped_column(TextEnum(Plan), default=Plan.OWNER)
    id: Mapped[str] = mapped_column(String(64))
    short_id: Mapped[str] = mapped_column(String(16))
    time: Mapped[datetime] = mapped_column()
    hostname: Mapped[str] = mapped_column(String(255), default="")
    paths: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    tree: Mapped[str | None] = mapped_column(String(64))
    parent: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # browse index: none | indexing | ready | failed
    index_status: Mapped[str] = mapped_column(String(16), default="none")
    indexed_at: Mapped[datetime | None] = mapped_column()
    file_count: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Pinned: kept by retention until `pinned_until` (null: until unpinned). Set by the
    # owner, by a restore for its safety snapshot, by a before-update backup.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    pinned_until: Mapped[datetime | None] = mapped_column()
    pin_note: Mapped[str | None] = mapped_column(Text)
    pinned_at: Mapped[datetime | None] = mapped_column()
    pinned_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("pod_id", "plan", "id", name="uq_snapshots_pod_plan_id"),
        Index("ix_snapshots_pinned", "pod_id", "plan", postgresql_where=text("pinned")),
        Index("ix_snapshots_pod_plan_time", "pod_id", "plan", "time"),
        Index("ix_snapshots_pod_short", "pod_id", "short_id"),
        Index("ix_snapshots_tags", "tags", postgresql_using="gin"),
    )


class SnapshotFile(Base):
    """One node of a snapshot's tree (from `restic ls --json`), for browsing without restic."""

    __tablename__ = "snapshot_files"

    snapshot_pk: Mapped[int] = mapped_column(
        ForeignKey("snapshots.pk", ondelete="CASCADE"), primary_key=True
    )
    parent: Mapped[str] = mapped_column(Text, primary_key=True)  # "/" or "/files/a"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))  # file | dir | symlink | ...
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[datetime | None] = mapped_column()
    mode: Mapped[int | None] = mapped_column(BigInteger)
    link_target: Mapped[str | None] = mapped_column(Text)
    # A version id of a file's content: equal in two snapshots exactly when restic says the
    # content is the same (carried over from the indexed parent through `restic diff`).
    # Null in rows indexed before content ids existed.
    content_id: Mapped[str | None] = mapped_column(String(32))
