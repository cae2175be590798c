from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.kit.pagination import Pagination

Change = Literal["added", "removed", "modified", "metadata", "type"]
DiffSource = Literal["auto", "index", "restic"]


class SnapshotRef(BaseModel):
    id: str
    short_id: str
    time: datetime


class ChangeTotal(BaseModel):
    files: int = Field(description="Regular files with this change")
    bytes: int | None = Field(
        description="Their size (added, modified, metadata: after; removed: before); null "
        "when restic answered and a snapshot is not indexed"
    )
    entries: int = Field(description="Every entry with this change: files, folders, links")


class DiffTotals(BaseModel):
    added: ChangeTotal
    removed: ChangeTotal
    modified: ChangeTotal
    metadata: ChangeTotal
    type: ChangeTotal


class DiffItem(BaseModel):
    path: str
    change: Change
    type: str | None = Field(
        description="file | dir | symlink | … (after the change; before it for a removed "
        "entry); null when restic answered and the snapshots are not indexed"
    )
    size_before: int | None
    size_after: int | None
    mtime_before: datetime | None
    mtime_after: datetime | None
    mode_before: int | None
    mode_after: int | None


class TableRows(BaseModel):
    table: str
    rows_before: int | None
    rows_after: int | None
    change: Literal["added", "removed", "changed", "unchanged"]


class DatabaseChange(BaseModel):
    file: str = Field(description="The dump's path in the snapshot, e.g. /database/wiki.sql")
    change: Literal["added", "removed", "modified", "unchanged"]
    size_before: int | None
    size_after: int | None
    sha256_before: str | None
    sha256_after: str | None
    tables: list[TableRows] = Field(
        description="Row counts per table as the backups recorded them in the dump's manifest"
    )


class DiffRead(BaseModel):
    snapshot: SnapshotRef
    against: SnapshotRef
    source: Literal["index", "restic"] = Field(
        description="`index`: both browse indexes (content ids); `restic`: `restic diff`"
    )
    totals: DiffTotals
    items: list[DiffItem]
    total: int = Field(description="Items matching `change` (all items without it)")
    limit: int
    offset: int
    pagination: Pagination
    database: list[DatabaseChange]


class Version(BaseModel):
    content_id: str | None = Field(
        description="The version's content id (null for rows indexed before content ids)"
    )
    exact: bool = Field(
        description="`true`: grouped by content id (restic's own comparison); `false`: at "
        "least one snapshot's row had no content id and was grouped by size and mtime"
    )
    type: str
    size: int | None
    mtime: datetime | None
    mode: int | None
    first_snapshot: SnapshotRef = Field(description="The oldest snapshot with this version")
    last_snapshot: SnapshotRef = Field(description="The newest snapshot with this version")
    snapshots: int = Field(description="Snapshots holding this version")
    download: str = Field(description="Where to download it (from the last snapshot)")
    restore: dict[str, Any] = Field(
        description="The body of POST /v1/pods/{pod_id}/restores that puts it back"
    )


class HistoryRead(BaseModel):
    path: str
    versions: list[Version] = Field(description="Newest first")
    snapshots_scanned: int = Field(description="The pod's snapshots of this plan")
    snapshots_without_path: int = Field(description="Indexed snapshots that lack the path")
    not_indexed: int = Field(
        description="Snapshots whose index is not ready (not looked into) or whose row "
        "for the path has no content id (used, grouped by size and mtime)"
    )
    without_content_id: int = Field(
        description="Of `not_indexed`, the snapshots whose row was used without content id"
    )
