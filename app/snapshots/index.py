"""The browse index: a snapshot's tree from `restic ls --json`, stored for instant listing.

Rows go in with COPY in batches, so 100,000 files index in seconds and memory stays flat.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.restic import Repository, Restic
from app.models import Snapshot, SnapshotFile
from app.models.base import utcnow
from app.snapshots import repository
from app.snapshots.repository import parse_time

BATCH = 5000
COLUMNS = ("snapshot_pk", "parent", "name", "type", "size", "mtime", "mode", "link_target")


def unix_permissions(go_mode: int) -> int:
    """restic records Go's FileMode: permission bits low, type and special bits high."""
    perm = go_mode & 0o777
    if go_mode & (1 << 23):
        perm |= 0o4000  # setuid
    if go_mode & (1 << 22):
        perm |= 0o2000  # setgid
    if go_mode & (1 << 20):
        perm |= 0o1000  # sticky
    return perm


def node_row(snapshot_pk: int, node: dict[str, Any]) -> tuple[Any, ...] | None:
    path = str(node.get("path") or "")
    if not path or path == "/":
        return None
    parent, name = posixpath.split(path.rstrip("/"))
    mtime: datetime | None = None
    if node.get("mtime"):
        try:
            mtime = parse_time(str(node["mtime"]))
        except ValueError:
            mtime = None
    size = node.get("size")
    return (
        snapshot_pk,
        parent or "/",
        name,
        str(node.get("type") or "file"),
        int(size) if size is not None else None,
        mtime,
        unix_permissions(int(node["mode"])) if node.get("mode") is not None else None,
        node.get("linktarget") or node.get("link_target"),
    )


async def _copy(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        SnapshotFile.__tablename__, records=rows, columns=list(COLUMNS)
    )


async def build(
    session: AsyncSession, restic: Restic, repo: Repository, snapshot: Snapshot, **kw: Any
) -> int:
    """(Re)index one snapshot inside the caller's transaction; returns the node count."""
    await repository.delete_files(session, snapshot.pk)
    batch: list[tuple[Any, ...]] = []
    seen: set[tuple[str, str]] = set()
    count = 0

    async def _node(node: dict[str, Any]) -> None:
        nonlocal count
        row = node_row(snapshot.pk, node)
        if row is None or (row[1], row[2]) in seen:
            return
        seen.add((row[1], row[2]))
        batch.append(row)
        count += 1
        if len(batch) >= BATCH:
            await _copy(session, batch)
            batch.clear()

    record: dict[str, Any] = {}
    await restic.ls(repo, snapshot.id, _node, on_snapshot=record.update, **kw)
    await _copy(session, batch)
    values: dict[str, Any] = {"index_status": "ready", "indexed_at": utcnow(), "file_count": count}
    if record.get("id") == snapshot.id:
        # restic's own record: exact time and tree (a backup records its snapshot from
        # what it asked restic, to save restic a second start).
        values.update(
            time=parse_time(str(record["time"])) if record.get("time") else snapshot.time,
            tree=record.get("tree") or snapshot.tree,
            paths=list(record.get("paths") or snapshot.paths),
            hostname=str(record.get("hostname") or snapshot.hostname),
        )
    await repository.set_indexed(session, snapshot.pk, values)
    return count


# What restic's backup summary counts as new or modified. A directory counts as unchanged
# only when its whole node equals the parent's (metadata and subtree id), so with every
# count at zero each top-level folder is the parent's; with the same top-level names the
# snapshot's tree is the parent's tree (measured with 0.14 and 0.18: a chmod, a touched
# file, a new ctime, a changed link or a removed file each make a directory "changed"; a
# top-level folder left out changes no count but writes a new root tree).
_CHANGES = ("files_new", "files_changed", "dirs_new", "dirs_changed", "data_blobs", "tree_blobs")


def same_tree_as_parent(
    summary: dict[str, Any], top_level: list[str], parent: Snapshot | None
) -> bool:
    """Whether the snapshot a backup just made (``summary``, the names it backed up at the
    top of its tree) provably has its parent's tree, and that parent's browse index is
    whole: then the index is the parent's (``copy_parent``), no `restic ls` needed."""
    if parent is None or parent.index_status != "ready" or not parent.tree:
        return False
    if any(summary.get(key) != 0 for key in _CHANGES):
        return False
    parent_top = sorted(posixpath.basename(p.rstrip("/")) for p in parent.paths or [])
    return parent_top == sorted(top_level)


async def copy_parent(
    session: AsyncSession, snapshot: Snapshot, parent: Snapshot, time: datetime
) -> int:
    """Index ``snapshot`` as a copy of its parent's index (same tree, checked by the
    caller with ``same_tree_as_parent``), inside the caller's transaction; its tree and
    restic's time for it are recorded as the index job would from `restic ls`."""
    await repository.delete_files(session, snapshot.pk)
    await repository.copy_files(session, parent.pk, snapshot.pk)
    count = int(parent.file_count or 0)
    await repository.set_indexed(
        session,
        snapshot.pk,
        {
            "index_status": "ready",
            "indexed_at": utcnow(),
            "file_count": count,
            "tree": parent.tree,
            "time": time,
        },
    )
    return count
