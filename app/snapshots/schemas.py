from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.snapshots.dumps import DumpRecord

SnapshotKind = Literal["backup", "safety", "imported"]


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
