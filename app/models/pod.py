from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin
from app.models.shapes import PodDatabase, PodFiles, PodHooks
from app.models.types import Stored


class Pod(IdMixin, TimestampMixin, Base):
    """A hosted app. Non-secret connection settings are JSON; secrets are ciphertext."""

    __tablename__ = "pods"
    # Names are how people and the CLI call pods: one per account (migration 0004).
    __table_args__ = (Index("uq_pods_account_id_name", "account_id", "name", unique=True),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    app: Mapped[str] = mapped_column(String(100))
    files: Mapped[PodFiles | None] = mapped_column(Stored(PodFiles))
    files_secret: Mapped[str | None] = mapped_column(Text)  # {"password", "private_key"}
    database: Mapped[PodDatabase | None] = mapped_column(Stored(PodDatabase))
    database_secret: Mapped[str | None] = mapped_column(Text)  # {"password"}
    hooks: Mapped[PodHooks | None] = mapped_column(Stored(PodHooks))
    # SFTP host key pinned on first successful connect (OpenSSH public key line).
    pinned_host_key: Mapped[str | None] = mapped_column(Text)
    pinned_host_key_at: Mapped[datetime | None] = mapped_column()
