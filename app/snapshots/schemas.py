from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from app.kit.validators import Body, check_printable
from app.snapshots.dumps import DumpRecord

SnapshotKind = Literal["backup", "safety", "imported"]


class PinRead(BaseModel):
    note: str | None = Field(None, description="Why it is kept (plain text)")
    until: datetime | None = Field(
        None, description="When the pin ends (retention may then forget it); null: never"
    )
    at: datetime | None = Field(None, description="When it was pinned")
    by: str | None = Field(
        None,
        description="Who pinned it: the token's actor, or `before-update` for the backup "
        "taken before an app update",
    )


class SnapshotRead(BaseModel):
    id: str = Field(description="restic's 64-hex snapshot id")
    short_id: str
    time: datetime
    hostname: str
    paths: list[str]
    tags: list[str]
    summary: dict[str, Any] | None
    job_id: uuid.UUID | None
    kind: SnapshotKind = Field(
        "imported",
        description="`backup`: made by a backup job (manual or scheduled); `safety`: the "
        "pod's state taken by a restore just before it wrote (files and database), restored "
        "only by id; `imported`: found in the repository by a refresh (made outside the "
        "service). `latest` is the newest snapshot that is not `safety`.",
    )
    trigger: str | None = Field(
        None,
        description="What started the job that made it (`manual`, `scheduled`; for a safety "
        "snapshot, what started the restore); null for imported snapshots.",
    )
    database_dump: DumpRecord = Field(
        default_factory=lambda: DumpRecord(recorded=False),
        description="Whether the service recorded this snapshot's database dump.",
    )
    plan: str
    locations: list[str] = Field(
        default_factory=list,
        description="Where the snapshot exists: `primary` (the owner's repository) and/or "
        "`copy` (the second copy; matched by tree and time, as `restic copy` gives the copy "
        "a new id). Filled in lists; empty on single reads.",
    )
    index_status: str = Field(description="Browse index: none | indexing | ready | failed")
    file_count: int | None
    pinned: bool = Field(
        False, description="Pinned now: retention keeps it whatever the policy says."
    )
    pin: PinRead | None = Field(None, description="The pin in force; null when not pinned.")


class FileEntry(BaseModel):
    name: str
    path: str
    type: str = Field(description="file | dir | symlink | …")
    size: int | None
    mtime: datetime | None
    mode: int | None = Field(description="Unix permission bits (420 = 0o644)")
    link_target: str | None = Field(
        None, description="A symlink's target, where the restic version reports it (0.15+)"
    )


def plain_note(value: str | None) -> str | None:
    """Plain text people read in panels and terminals; empty means none."""
    return check_printable(value) or None if value else None


class PinRequest(Body):
    model_config = {
        "extra": "forbid",
        "str_strip_whitespace": True,
        "json_schema_extra": {"examples": [{"note": "before the big import", "days": 90}]},
    }

    note: Annotated[
        str | None,
        StringConstraints(strip_whitespace=True, max_length=500),
        AfterValidator(plain_note),
    ] = Field(None, description="Why it is kept: plain text, one line, at most 500 characters.")
    days: int | None = Field(
        None,
        ge=1,
        le=36500,
        description="Keep it this many days from now; null (or absent): until unpinned.",
    )
