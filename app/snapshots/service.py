"""Snapshot rules: visibility by plan, lookups by full or short id, the browse index."""

from __future__ import annotations

import posixpath
import uuid
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app import plans
from app.audit import service as audit
from app.auth.dependencies import Principal
from app.config import Settings
from app.errors import Conflict, NotFound, ValidationFailed
from app.jobs import repository as job_repository
from app.jobs import service as jobs
from app.kit import fastread
from app.models import Job, Pod, Snapshot, SnapshotFile
from app.models.base import utcnow
from app.models.kinds import JobKind
from app.models.shapes import JobParams
from app.snapshots import repository
from app.snapshots.dumps import dump_record
from app.snapshots.kinds import kind_of, trigger_of
from app.snapshots.schemas import FileEntry, PinRead, SnapshotRead


class SnapshotNotIndexed(Conflict):
    message = "The snapshot's file list is not indexed yet"


def check_plan(principal: Principal, plan: str) -> None:
    if not plans.visible(principal, plan):
        raise NotFound("Snapshot not found")


async def list_visible(
    source: fastread.Source,
    principal: Principal,
    pod_id: uuid.UUID,
    plan: str,
    tag: str | None,
    limit: int,
    offset: int,
    kind: str | None = None,
    pinned: bool | None = None,
) -> tuple[list[SnapshotRead], int, uuid.UUID]:
    """Visibility, one page and the total in one plain statement (lists are polled); and
    the pod's account. ``kind``: only backup, safety or imported snapshots; ``pinned``:
    only those pinned now (or not)."""
    rows = await repository.list_page(source, pod_id, plan, tag, limit, offset, kind, pinned)
    if not rows or not principal.owns(rows[0]["account_id"]):
        raise NotFound("Pod not found", hint="check the pod id")
    owner: uuid.UUID = rows[0]["account_id"]
    items = [read_mapping(r) for r in rows if r["pk"] is not None]
    if items:
        return items, int(rows[0]["total"]), owner
    if offset == 0:
        return [], 0, owner
    return [], await repository.count_listed(source, pod_id, plan, tag, kind, pinned), owner


_DERIVED = ("kind", "trigger", "database_dump", "pinned", "pin", "locations")


def _pin(active: bool, note: Any, until: Any, at: Any, by: Any) -> PinRead | None:
    return PinRead(note=note, until=until, at=at, by=by) if active else None


def read_mapping(row: Any) -> SnapshotRead:
    tags = list(row["tags"] or [])
    kind = kind_of(row["summary"], tags)
    return SnapshotRead.model_validate(
        {
            **{k: row[k] for k in SnapshotRead.model_fields if k not in _DERIVED},
            "paths": list(row["paths"] or []),
            "tags": tags,
            "kind": kind,
            "trigger": trigger_of(row["summary"], tags),
            "database_dump": dump_record(row["summary"]),
            "pinned": bool(row["pin_active"]),
            "pin": _pin(
                bool(row["pin_active"]),
                row["pin_note"],
                row["pinned_until"],
                row["pinned_at"],
                row["pinned_by"],
            ),
            "locations": list(row.get("locations") or []),
        }
    )


async def get(session: AsyncSession, pod: Pod, plan: str, snapshot_id: str) -> Snapshot:
    """A snapshot by full or short id; ``latest`` is the newest backup, never a safety
    snapshot (restoring `latest` twice must not restore what the first restore replaced)."""
    ident = snapshot_id.strip().lower()
    if ident == "latest":
        newest = await repository.latest_backup(session, pod.id, plan)
        if newest is None:
            if await repository.latest(session, pod.id, plan) is not None:
                raise NotFound(
                    "The pod has no backup snapshot yet, only safety snapshots",
                    hint="a safety snapshot is restored by its id: list them with "
                    "GET /v1/pods/{pod_id}/snapshots",
                )
            raise NotFound("The pod has no snapshots yet", hint="run a backup first")
        return newest
    if not (8 <= len(ident) <= 64) or any(c not in "0123456789abcdef" for c in ident):
        raise ValidationFailed(
            "snapshot_id",
            f"'{snapshot_id}' is not a snapshot id",
            hint="use the 64-hex id, its first 8 characters (short id), or 'latest'",
        )
    snap = await repository.find(session, pod.id, plan, ident)
    if snap is None:
        raise NotFound(
            f"Snapshot {snapshot_id} not found",
            hint="list snapshots with GET /v1/pods/{pod_id}/snapshots, or refresh them",
        )
    return snap


def to_read(snap: Snapshot) -> SnapshotRead:
    kind = kind_of(snap.summary, snap.tags)
    return SnapshotRead(
        id=snap.id,
        short_id=snap.short_id,
        time=snap.time,
        hostname=snap.hostname,
        paths=list(snap.paths or []),
        tags=list(snap.tags or []),
        summary=snap.summary,
        job_id=snap.job_id,
        kind=kind,
        trigger=trigger_of(snap.summary, snap.tags),
        database_dump=dump_record(snap.summary),
        plan=snap.plan,
        index_status=snap.index_status,
        file_count=snap.file_count,
        pinned=(active := repository.pin_active(snap)),
        pin=_pin(active, snap.pin_note, snap.pinned_until, snap.pinned_at, snap.pinned_by),
    )


def normalize_path(path: str) -> str:
    """A snapshot path as the browse index keeps it. Literal: spaces at either end belong
    to the name, as do ``*``, ``?`` and brackets (``restic dump`` takes it as it is)."""
    if "\x00" in path:
        raise ValidationFailed("path", "the path contains a NUL byte")
    clean = posixpath.normpath("/" + path.lstrip("/"))
    if clean.startswith("//"):
        clean = clean[1:]
    return clean


def require_index(snap: Snapshot) -> None:
    if snap.index_status != "ready":
        raise SnapshotNotIndexed(
            f"snapshot {snap.short_id} is {snap.index_status}: its file list is not indexed yet",
            hint="indexing has been requested; retry in a few seconds",
            detail={"index_status": snap.index_status},
        )


async def node(session: AsyncSession, snap: Snapshot, path: str) -> SnapshotFile | None:
    parent, name = posixpath.split(path)
    row: SnapshotFile | None = await session.get(SnapshotFile, (snap.pk, parent or "/", name))
    return row


async def children(
    session: AsyncSession, snap: Snapshot, path: str, limit: int, offset: int
) -> tuple[list[FileEntry], int]:
    require_index(snap)
    if path != "/":
        entry = await node(session, snap, path)
        if entry is None:
            raise NotFound(
                f"'{path}' is not in snapshot {snap.short_id}", hint="browse from path=/ to find it"
            )
        if entry.type != "dir":
            raise ValidationFailed(
                "path",
                f"'{path}' is a {entry.type}, not a folder",
                hint="download it with …/download?path=",
            )
    rows, total = await repository.children(session, snap.pk, path, limit, offset)
    return [entry_of(r) for r in rows], total


def entry_of(row: SnapshotFile) -> FileEntry:
    return FileEntry(
        name=row.name,
        path=posixpath.join(row.parent, row.name),
        type=row.type,
        size=row.size,
        mtime=row.mtime,
        mode=row.mode,
        link_target=row.link_target,
    )


def summary_of(snap: Snapshot) -> dict[str, Any]:
    return dict(snap.summary or {})


async def request_index(
    session: AsyncSession,
    redis: ArqRedis,
    settings: Settings,
    pod: Pod,
    plan: str,
    snapshot_id: str,
    *,
    measure: bool = False,
) -> Job:
    """Queue an index job for one snapshot (enqueued after commit), unless one is queued
    or running for it already: a panel polling a folder must not queue one per request.

    ``measure``: also record the repository's size (after a backup: kept out of the backup
    job itself, which then finishes a `restic stats` sooner).
    """
    active = await job_repository.active_index_job(session, pod.id, plan, snapshot_id)
    if active is not None:
        return active
    job, _ = await jobs.create(
        session,
        redis,
        settings,
        kind=JobKind.INDEX,
        pod_id=pod.id,
        account_id=pod.account_id,
        plan=plan,
        trigger="api",
        params=JobParams(snapshot_id=snapshot_id, measure=measure),
    )
    return job


async def set_pin(
    session: AsyncSession,
    principal: Principal,
    snap: Snapshot,
    *,
    note: str | None,
    days: int | None,
    client: str | None,
) -> Snapshot:
    """The owner pins a snapshot (or changes its pin): exactly the note and end asked."""
    until = utcnow() + timedelta(days=days) if days else None
    await repository.pin(session, snap.pk, until=until, note=note, by=principal.actor, replace=True)
    await audit.record(
        session,
        "snapshot.pin",
        principal=principal,
        account_id=await _account(session, snap),
        pod_id=snap.pod_id,
        detail={
            "snapshot_id": snap.id,
            "plan": str(snap.plan),
            "note": note,
            "until": until.isoformat() if until else None,
        },
        client=client,
    )
    await session.flush()
    await session.refresh(snap)
    return snap


async def clear_pin(
    session: AsyncSession, principal: Principal, snap: Snapshot, *, client: str | None
) -> Snapshot:
    """Unpin: retention treats it like any other snapshot again."""
    # Read before the update: it writes its values onto the loaded row.
    had, note = snap.pinned, snap.pin_note
    await repository.unpin(session, snap.pk)
    if had:
        await audit.record(
            session,
            "snapshot.unpin",
            principal=principal,
            account_id=await _account(session, snap),
            pod_id=snap.pod_id,
            detail={"snapshot_id": snap.id, "plan": str(snap.plan), "note": note},
            client=client,
        )
    await session.refresh(snap)
    return snap


async def _account(session: AsyncSession, snap: Snapshot) -> uuid.UUID | None:
    pod = await session.get(Pod, snap.pod_id)
    return pod.account_id if pod else None
