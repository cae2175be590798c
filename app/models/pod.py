from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class Pod(IdMixin, TimestampMixin, Base):
    """A hosted app. Non-secret connection settings are JSON; secrets are ciphertext."""

    __tablename__ = "pods"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    app: Mapped[str] = mapped_column(String(100))
    files: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    files_secret: Mapped[str | None] = mapped_column(Text)  # {"password", "private_key"}
    database: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    database_secret: Mapped[str | None] = mapped_column(Text)  # {"password"}
    hooks: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # SFTP host key pinned on first successful connect (OpenSSH public key line).
    pinned_host_key: Mapped[str | None] = mapped_column(Text)
    pinned_host_key_at: Mapped[datetime | None] = mapped_column()
