"""Snapshot diffs (from the browse indexes, else `restic diff`) and file version history.

A diff compares snapshot ``b`` (before, ``against``) with ``a`` (after). From the index
when both are indexed with content ids: one SQL full join of the two trees, exact for a
snapshot and the one its content ids were carried from (its parent, as the index job
picks it). Between snapshots further apart a file changed and changed back shows as
modified (its content got a new id on the way); ``source=restic`` is exact for any pair.
Folders: only added, removed or of another type (their metadata changes with every
change below them); metadata means mode or mtime (a link's target), not ownership or
ctime, which the index does not keep.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import commit
from app.errors import Conflict, NotFound, ValidationFailed
from app.history import repository
from app.history.changes import (
    CHANGES,
    change_of,
    database_changes,
    group_versions,
    totals_from_row,
    totals_of,
)
from app.history.schemas import (
    DatabaseChange,
    DiffItem,
    DiffTotals,
    HistoryRead,
    SnapshotRef,
    Version,
)
from app.integrations.restic import Repository, Restic, ResticError
from app.models import Pod, Snapshot
from app.snapshots import repository as snapshots
from app.snapshots import service as snapshot_service
from app.snapshots.download import download_error

log = logging.getLogger(__name__)

LOOKUP_BATCH = 5000


class NoEarlierSnapshot(Conflict):
    message = "There is no earlier snapshot to compare with"


class DiffNotIndexed(Conflict):
    message = "The snapshots cannot be compared from the index"


@dataclass
class Pair:
    snap: Snapshot  # after
    base: Snapshot  # before


@dataclass
class Changes:
    source: str
    totals: DiffTotals
    items: list[DiffItem]
    total: int


def ref(snap: Snapshot) -> SnapshotRef:
    return SnapshotRef(id=snap.id, short_id=snap.short_id, time=snap.time)


async def pair(
    session: AsyncSession, pod: Pod, plan: str, snapshot_id: str, against: str | None
) -> Pair:
    """The snapshot and what it is compared with: ``against``, else its recorded parent
    (when still recorded), else the snapshot before it by time."""
    snap = await snapshot_service.get(session, pod, plan, snapshot_id)
    if against:
        return Pair(snap, await snapshot_service.get(session, pod, plan, against))
    base = await repository.by_id(session, pod.id, plan, snap.parent) if snap.parent else None
    base = base or await repository.previous(session, snap)
    if base is None:
        raise NoEarlierSnapshot(
            f"snapshot {snap.short_id} is the pod's first: there is nothing before it",
            hint="compare it with a later snapshot: …/snapshots/{later}/diff?against="
            f"{snap.short_id}",
        )
    return Pair(snap, base)


async def index_on_demand(
    session: AsyncSession, redis: ArqRedis, settings: Settings, pod: Pod, plan: str, p: Pair
) -> None:
    """A snapshot without a usable index gets one queued, so the next diff is fast."""
    queued = False
    for snap in (p.snap, p.base):
        if snap.index_status in ("none", "failed"):
            await snapshot_service.request_index(session, redis, settings, pod, plan, snap.id)
            queued = True
    if queued:
        await commit(session)


async def indexed(session: AsyncSession, p: Pair) -> bool:
    """Both indexes are ready and carry content ids."""
    for snap in (p.snap, p.base):
        if snap.index_status != "ready" or not await snapshots.has_content_ids(session, snap.pk):
            return False
    return True


async def from_index(
    session: AsyncSession, p: Pair, change: str | None, limit: int, offset: int
) -> Changes:
    """The diff from both indexes (``indexed`` said they carry content ids)."""
    rows = await repository.diff(session, p.snap.pk, p.base.pk, change, limit, offset)
    totals = totals_from_row(rows[0])
    items = [DiffItem.model_validate(r, from_attributes=True) for r in rows if r.path is not None]
    if change is None:
        total = sum(getattr(totals, c).entries for c in CHANGES)
    else:
        total = getattr(totals, change).entries
    return Changes("index", totals, items, total)


async def from_restic(
    session: AsyncSession,
    restic: Restic,
    repo: Repository,
    p: Pair,
    *,
    timeout: float,
    change: str | None,
    limit: int,
    offset: int,
) -> Changes:
    """The diff by `restic diff --metadata`, with sizes, times and modes from whichever
    side is indexed; with both indexed, a metadata change the index does not show
    (ownership, ctime, inode) is left out, as from the index."""
    found: list[tuple[str, str, bool]] = []

    def _change(path: str, modifier: str) -> None:
        kind = change_of(modifier)
        is_dir = path.endswith("/") and len(path) > 1
        if kind is None or (kind == "metadata" and is_dir):
            return
        found.append((path.rstrip("/") or "/", kind, is_dir))

    try:
        await restic.diff(repo, p.base.id, p.snap.id, _change, metadata=True, timeout=timeout)
    except ResticError as exc:
        log.warning(
            "restic diff %s %s failed (%s): %s",
            p.base.short_id,
            p.snap.short_id,
            exc.code,
            exc.message,
        )
        raise download_error(exc) from None
    keys = [posixpath.split(path) for path, _, _ in found]
    after = await _rows(session, p.snap, keys)
    before = await _rows(session, p.base, keys)
    both = after is not None and before is not None
    items: list[DiffItem] = []
    for (path, kind, is_dir), key in zip(found, keys, strict=True):
        a = after.get(key) if after is not None else None
        b = before.get(key) if before is not None else None
        if kind == "metadata" and both and a is not None and b is not None and _same_meta(a, b):
            continue
        items.append(_item(path, kind, a, b, "dir" if is_dir else None))
        if kind == "type":
            # restic names only the entry whose type changed; what a folder held before
            # or holds now is removed or added, as the index shows it.
            items += await _below(session, p.base, path, "removed")
            items += await _below(session, p.snap, path, "added")
    items.sort(key=lambda i: i.path)
    totals = totals_of(items, sizes_known=both)
    chosen = items if change is None else [i for i in items if i.change == change]
    return Changes("restic", totals, chosen[offset : offset + limit], len(chosen))


def _item(path: str, kind: str, a: Any, b: Any, guess: str | None) -> DiffItem:
    known = a if a is not None else b
    return DiffItem(
        path=path,
        change=kind,
        type=known.type if known is not None else guess,
        size_before=b.size if b is not None else None,
        size_after=a.size if a is not None else None,
        mtime_before=b.mtime if b is not None else None,
        mtime_after=a.mtime if a is not None else None,
        mode_before=b.mode if b is not None else None,
        mode_after=a.mode if a is not None else None,
    )


async def _below(session: AsyncSession, snap: Snapshot, path: str, kind: str) -> list[DiffItem]:
    if snap.index_status != "ready":
        return []
    rows = await repository.descendants(session, snap.pk, path)
    return [
        _item(
            posixpath.join(r.parent, r.name),
            kind,
            r if kind == "added" else None,
            r if kind == "removed" else None,
            None,
        )
        for r in rows
    ]


def _same_meta(a: Any, b: Any) -> bool:
    return bool(a.mode == b.mode and a.mtime == b.mtime and a.link_target == b.link_target)


async def _rows(
    session: AsyncSession, snap: Snapshot, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], Any] | None:
    """The snapshot's index rows at ``keys``; None when it is not indexed."""
    if snap.index_status != "ready":
        return None
    out: dict[tuple[str, str], Any] = {}
    for start in range(0, len(keys), LOOKUP_BATCH):
        chunk = [(parent or "/", name) for parent, name in keys[start : start + LOOKUP_BATCH]]
        out.update(await repository.rows_at(session, snap.pk, chunk))
    return out


def database(p: Pair) -> list[DatabaseChange]:
    return database_changes(p.snap.summary, p.base.summary)


# -- history -------------------------------------------------------------------------------


def history_path(path: str) -> str:
    clean = snapshot_service.normalize_path(path)
    if clean == "/":
        raise ValidationFailed(
            "path",
            "give the path of a file or folder, not the snapshot's root",
            hint="e.g. path=/files/uploads/logo.png (browse …/snapshots/latest/files)",
        )
    return clean


def _restore_body(path: str, snapshot_id: str, plan: str) -> dict[str, Any]:
    body: dict[str, Any] = {"snapshot_id": snapshot_id}
    if path == "/database" or path.startswith("/database/"):
        body.update(files=False, database=True)
    else:
        body["paths"] = [path]
    if plan != "owner":
        body["plan"] = plan
    return body


def _download(pod_id: Any, plan: str, path: str, snapshot_id: str) -> str:
    suffix = f"&plan={plan}" if plan != "owner" else ""
    return f"/v1/pods/{pod_id}/snapshots/{snapshot_id}/download?path={quote(path)}{suffix}"


async def history(session: AsyncSession, pod: Pod, plan: str, path: str) -> HistoryRead:
    """Every version of one path across the pod's snapshots of ``plan``, newest first."""
    clean = history_path(path)
    parent, name = posixpath.split(clean)
    scan = group_versions(await repository.history(session, pod.id, plan, parent or "/", name))
    versions = [
        Version(
            content_id=g.newest.content_id,
            exact=g.exact,
            type=g.newest.type,
            size=g.newest.size,
            mtime=g.newest.mtime,
            mode=g.newest.mode,
            first_snapshot=g.ref(g.oldest),
            last_snapshot=g.ref(g.newest),
            snapshots=g.count,
            download=_download(pod.id, plan, clean, g.newest.id),
            restore=_restore_body(clean, g.newest.id, plan),
        )
        for g in scan.groups
    ]
    if not versions:
        waiting = (
            f"; {scan.not_ready} of its snapshots are not indexed yet (browsing one indexes it)"
            if scan.not_ready
            else ""
        )
        raise NotFound(
            f"'{clean}' is in none of the pod's {scan.scanned - scan.not_ready} indexed snapshots",
            hint=f"check the path: browse …/snapshots/latest/files?path=/files{waiting}",
        )
    return HistoryRead(
        path=clean,
        versions=versions,
        snapshots_scanned=scan.scanned,
        snapshots_without_path=scan.without_path,
        not_indexed=scan.not_ready + scan.without_content_id,
        without_content_id=scan.without_content_id,
    )
