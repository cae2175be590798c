"""What the audit routes answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    action: str
    actor: str
    account_id: uuid.UUID | None
    pod_id: uuid.UUID | None
    token_id: uuid.UUID | None
    client: str | None
    detail: dict[str, Any]


ActionQuery = Annotated[
    str | None,
    Query(max_length=64, description="Only this action, e.g. `backup_settings.verify`."),
]
