"""Parts of the status overview that other rooms also answer with."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class CopyLag(BaseModel):
    """How far the second copy is behind the primary."""

    configured: bool
    snapshots_behind: int = Field(description="Primary snapshots newer than the copy's newest.")
    seconds_behind: float = Field(
        description="Since the oldest of those was taken (0 when the copy is current)."
    )
    last_copy_at: datetime | None = Field(description="The last successful copy job's end.")
    last_status: str | None = Field(description="The last copy job's outcome.")
    alerted: bool = Field(description="`copy.lagging` was sent and not yet cleared.")
