"""The second copy's settings as sent and read (``/v1/pods/{pod_id}/copy-settings``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.kit.validators import Body
from app.targets.schemas import (
    LocalTargetRead,
    Prune,
    Retention,
    S3TargetRead,
    Target,
    Verification,
)

_EXAMPLE: dict[str, Any] = {
    "target": {
        "kind": "s3",
        "endpoint": "s3.eu-central-003.backblazeb2.com",
        "bucket": "my-pod-second-copy",
        "access_key_id": "0035a1b2c3d4e5f0000000002",
        "secret_access_key": "K003abcdefghijklmnopqrstuvwxyz0",
    },
    "retention": {"keep_daily": 14, "keep_weekly": 8, "keep_monthly": 12},
    "verification": {"enabled": True, "interval_days": 7, "read_data_subsets": 12},
}


class CopySettingsWrite(Body):
    """The second copy. ``target`` is required the first time; later an omitted section
    keeps its stored value (defaults on the first save). No schedule: the copy follows
    the primary's backups."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [_EXAMPLE]}
    )

    target: Target | None = None
    retention: Retention | None = None
    verification: Verification | None = None
    prune: Prune | None = None


class CopySettingsRead(BaseModel):
    pod_id: uuid.UUID
    target: S3TargetRead | LocalTargetRead
    repository: str = Field(description="`s3:https://<endpoint>/<bucket>` or the local path.")
    repository_id: str | None = Field(description="restic's id of the copy, once initialised.")
    initialized_at: datetime | None
    retention: Retention
    verification: Verification
    prune: Prune
    verified_at: datetime | None
    verified_ok: bool | None
    created_at: datetime
    updated_at: datetime
