from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin
from app.models.shapes import (
    StoredRetention,
    StoredSchedule,
    StoredVerification,
    TargetPlace,
)
from app.models.types import Stored


class BackupSettings(TimestampMixin, Base):
    """The owner plan's target, schedule, retention and verification for one pod."""

    __tablename__ = "backup_settings"

    pod_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pods.id", ondelete="CASCADE"), primary_key=True
    )
    target_kind: Mapped[str] = mapped_column(String(16))  # s3 | local
    target: Mapped[TargetPlace] = mapped_column(Stored(TargetPlace))
    target_secret: Mapped[str | None] = mapped_column(Text)  # secret_access_key, encrypted
    # Lock mode's maintenance key: its secret_access_key, encrypted (null: none)
    maintenance_secret: Mapped[str | None] = mapped_column(Text)
    repo_password: Mapped[str] = mapped_column(Text)  # encrypted; generated once
    repository_id: Mapped[str | None] = mapped_column(String(64))  # restic config id
    repository_initialized_at: Mapped[datetime | None] = mapped_column()
    schedule: Mapped[StoredSchedule] = mapped_column(Stored(StoredSchedule))
    retention: Mapped[StoredRetention] = mapped_column(Stored(StoredRetention))
    verification: Mapped[StoredVerification] = mapped_column(
        Stored(StoredVerification), default=lambda: StoredVerification()
    )
    verified_at: Mapped[datetime | None] = mapped_column()
    verified_ok: Mapped[bool | None] = mapped_column()


class CopySettings(TimestampMixin, Base):
    """The owner's second copy of one pod (plan ``copy``): another bucket or provider,
    filled with `restic copy` from the owner's repository after each backup. Its own
    target, password, retention and verification, stored like the owner's; no schedule
    of its own (it follows the primary's backups)."""

    __tablename__ = "copy_settings"

    pod_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pods.id", ondelete="CASCADE"), primary_key=True
    )
    target_kind: Mapped[str] = mapped_column(String(16))  # s3 | local
    target: Mapped[TargetPlace] = mapped_column(Stored(TargetPlace))
    target_secret: Mapped[str | None] = mapped_column(Text)  # secret_access_key, encrypted
    repo_password: Mapped[str] = mapped_column(Text)  # encrypted; generated once
    repository_id: Mapped[str | None] = mapped_column(String(64))  # restic config id
    repository_initialized_at: Mapped[datetime | None] = mapped_column()
    retention: Mapped[StoredRetention] = mapped_column(Stored(StoredRetention))
    verification: Mapped[StoredVerification] = mapped_column(
        Stored(StoredVerification), default=lambda: StoredVerification()
    )
    verified_at: Mapped[datetime | None] = mapped_column()
    verified_ok: Mapped[bool | None] = mapped_column()
    # When the copy's own retention (prune) last ran: the copy job queues it when due.
    pruned_at: Mapped[datetime | None] = mapped_column()


# A row that holds a target, its secret and a repository password: the owner's or the copy's.
TargetRow = BackupSettings | CopySettings
