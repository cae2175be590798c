from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class RepositoryMaintenance(Base):
    """Repository-wide prune and check of a repository many pods share (the platform's
    shared layout): done once per interval, not once per pod."""

    __tablename__ = "repository_maintenance"

    repository: Mapped[str] = mapped_column(Text, primary_key=True)
    last_prune_at: Mapped[datetime | None] = mapped_column()
    last_check_at: Mapped[datetime | None] = mapped_column()
