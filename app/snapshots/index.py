"""The browse index: a snapshot's tree from `restic ls --json`, stored for instant listing.

Rows go in with COPY in batches, so 100,000 files index in seconds and memory stays flat.

Each file row carries a content id: a version id of its content, equal in two snapshots
exactly when restic says the content did not change between them. With an indexed parent
(the snapshot's recorded parent, else the newest indexed one before it) `restic diff`
names the paths added, changed in content or in type; every other file keeps the
parent's id, looked up per batch. A changed, new or parentless file gets a new id. A
symlink's id is a hash of its target. When `restic diff` fails the snapshot's content ids
stay null (logged): the index itself never fails for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import posixpath
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.restic import Repository, Restic, ResticError
from app.models import Snapshot, SnapshotFile
from app.models.base import utcnow
from app.snapshots import repository
from app.snapshots.repository import parse_time

log = logging.getLogger(__name__)

BATCH = 5000
COLUMNS = (
    "snapshot_pk",
    "parent",
    "name",
    "type",
    "size",
    "mtime",
    "mode",
    "link_target",
    "content_id",
)


def new_content_id(snapshot_id: str, path: str) -> str:
    """The id of a file version first seen at ``path`` in ``snapshot_id``."""
    data = snapshot_id.encode() + b"\0" + path.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:32]


def link_content_id(target: str) -> str:
    data = b"symlink\0" + target.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:32]


def full_path(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


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


async def changed_paths(
    restic: Restic, repo: Repository, base: str, snapshot: str, **kw: Any
) -> set[str]:
    """The paths `restic diff` says were added, changed in content or in type from
    snapshot ``base`` to ``snapshot`` (only these lose the base's content id)."""
    changed: set[str] = set()

    def _change(path: str, modifier: str) -> None:
        if any(m in modifier for m in "+MT"):
            changed.add(path.rstrip("/") or "/")

    await restic.diff(repo, base, snapshot, _change, **kw)
    return changed


class _ContentIds:
    """Content ids for one snapshot's rows, batch by batch (see the module's docstring).
    ``changes``: the running `restic diff` against ``base`` (None without a base); the
    first batch waits for it, so `restic ls` and `restic diff` run side by side."""

    def __init__(
        self,
        snapshot: Snapshot,
        base: Snapshot | None,
        changes: asyncio.Task[set[str] | None] | None,
    ) -> None:
        self.snapshot_id = snapshot.id
        self.base = base
        self.changes = changes

    async def complete(
        self, session: AsyncSession, rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """``rows`` (COLUMNS without content_id) with their content id appended."""
        changed = await self.changes if self.changes is not None else set()
        if changed is None:  # restic diff failed: no ids at all
            return [(*row, None) for row in rows]
        inherit: list[tuple[str, str]] = []
        if self.base is not None:
            inherit = [
                (row[1], row[2])
                for row in rows
                if row[3] == "file" and full_path(row[1], row[2]) not in changed
            ]
        known = (
            await repository.content_ids(session, self.base.pk, inherit)
            if inherit and self.base is not None
            else {}
        )
        out: list[tuple[Any, ...]] = []
        for row in rows:
            cid: str | None = None
            if row[3] == "file":
                cid = known.get((row[1], row[2])) or new_content_id(
                    self.snapshot_id, full_path(row[1], row[2])
                )
            elif row[3] == "symlink" and row[7]:
                cid = link_content_id(str(row[7]))
            out.append((*row, cid))
        return out

    async def close(self) -> None:
        """Stop the diff when the index ended without it (`restic ls` failed)."""
        if self.changes is not None and not self.changes.done():
            self.changes.cancel()
        if self.changes is not None:
            await asyncio.gather(self.changes, return_exceptions=True)


async def _changes(
    restic: Restic, repo: Repository, base: Snapshot, snapshot: Snapshot, **kw: Any
) -> set[str] | None:
    """``changed_paths``, or None (logged) when `restic diff` fails."""
    try:
        return await changed_paths(restic, repo, base.id, snapshot.id, **kw)
    except ResticError as exc:
        if exc.code == "interrupted":
            raise
        log.warning(
            "restic diff %s %s failed (%s): %s; the snapshot's content ids stay empty",
            base.short_id,
            snapshot.short_id,
            exc.code,
            exc.message,
        )
        return None


async def build(
    session: AsyncSession, restic: Restic, repo: Repository, snapshot: Snapshot, **kw: Any
) -> int:
    """(Re)index one snapshot inside the caller's transaction; returns the node count."""
    await repository.delete_files(session, snapshot.pk)
    base = await repository.diff_base(session, snapshot)
    changes = (
        asyncio.create_task(_changes(restic, repo, base, snapshot, **kw))
        if base is not None
        else None
    )
    ids = _ContentIds(snapshot, base, changes)
    try:
        return await _build(session, restic, repo, snapshot, ids, **kw)
    finally:
        await ids.close()


async def _build(
    session: AsyncSession,
    restic: Restic,
    repo: Repository,
    snapshot: Snapshot,
    ids: _ContentIds,
    **kw: Any,
) -> int:
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
            await _copy(session, await ids.complete(session, batch))
            batch.clear()

    record: dict[str, Any] = {}
    await restic.ls(repo, snapshot.id, _node, on_snapshot=record.update, **kw)
    await _copy(session, await ids.complete(session, batch))
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
