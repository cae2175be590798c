"""Every SQL query on snapshots."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, case, delete, func, not_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.kit import fastread
from app.models import Snapshot, SnapshotFile
from app.models.base import utcnow
from app.snapshots.kinds import KIND_SQL


def parse_time(value: str) -> datetime:
    """restic prints nanoseconds (and a zone); Python keeps microseconds."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        for ch in rest:
            if not ch.isdigit():
                break
            digits += ch
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def upsert(
    session: AsyncSession,
    *,
    pod_id: uuid.UUID,
    plan: str,
    snap: dict[str, Any],
    job_id: uuid.UUID | None = None,
    summary: dict[str, Any] | None = None,
) -> Snapshot:
    """Record a snapshot as restic lists it (``restic snapshots --json`` item)."""
    values = {
        "pod_id": pod_id,
        "plan": plan,
        "id": snap["id"],
        "short_id": snap.get("short_id") or snap["id"][:8],
        "time": parse_time(snap["time"]),
        "hostname": snap.get("hostname", ""),
        "paths": list(snap.get("paths") or []),
        "tags": list(snap.get("tags") or []),
        "tree": snap.get("tree"),
        "parent": snap.get("parent"),
        "summary": summary,
        "job_id": job_id,
    }
    stmt = insert(Snapshot).values(**values)
    update_cols: dict[str, Any] = {"tags": stmt.excluded.tags}
    if summary is not None:
        update_cols["summary"] = stmt.excluded.summary
    if job_id is not None:
        update_cols["job_id"] = stmt.excluded.job_id
    upsert_stmt = stmt.on_conflict_do_update(
        constraint="uq_snapshots_pod_plan_id", set_=update_cols
    ).returning(Snapshot)
    row: Snapshot | None = await session.scalar(
        upsert_stmt, execution_options={"populate_existing": True}
    )
    assert row is not None
    return row


async def ids(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> set[str]:
    rows = await session.scalars(
        select(Snapshot.id).where(Snapshot.pod_id == pod_id, Snapshot.plan == plan)
    )
    return set(rows.all())


async def delete_ids(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, snapshot_ids: Sequence[str]
) -> int:
    if not snapshot_ids:
        return 0
    result = await session.execute(
        delete(Snapshot).where(
            Snapshot.pod_id == pod_id, Snapshot.plan == plan, Snapshot.id.in_(snapshot_ids)
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def latest(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> Snapshot | None:
    row: Snapshot | None = await session.scalar(
        select(Snapshot)
        .where(Snapshot.pod_id == pod_id, Snapshot.plan == plan)
        .order_by(Snapshot.time.desc())
        .limit(1)
    )
    return row


async def latest_backup(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> Snapshot | None:
    """The newest snapshot that is not a safety snapshot (what ``latest`` means)."""
    s = aliased(Snapshot, name="s")
    row: Snapshot | None = await session.scalar(
        select(s)
        .where(s.pod_id == pod_id, s.plan == plan, text(f"({KIND_SQL}) <> 'safety'"))
        .order_by(s.time.desc(), s.pk.desc())
        .limit(1)
    )
    return row


async def find(
    session: AsyncSession, pod_id: uuid.UUID, plan: str | None, snapshot_id: str
) -> Snapshot | None:
    """By full id or by short (8-hex) id."""
    stmt = select(Snapshot).where(Snapshot.pod_id == pod_id)
    if plan is not None:
        stmt = stmt.where(Snapshot.plan == plan)
    if len(snapshot_id) == 64:
        stmt = stmt.where(Snapshot.id == snapshot_id)
    else:
        stmt = stmt.where(Snapshot.short_id == snapshot_id[:8], Snapshot.id.startswith(snapshot_id))
    rows = (await session.scalars(stmt.limit(2))).all()
    return rows[0] if len(rows) == 1 else None


async def has(session: AsyncSession, pod_id: uuid.UUID, plan: str, snapshot_id: str) -> bool:
    found = await session.scalar(
        select(Snapshot.pk).where(
            Snapshot.pod_id == pod_id,
            Snapshot.plan == plan,
            Snapshot.id == snapshot_id,
        )
    )
    return found is not None


async def listing(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> Sequence[Row[Any]]:
    """(id, short_id, time, hostname, tags, summary) of every snapshot, newest first."""
    rows = await session.execute(
        select(
            Snapshot.id,
            Snapshot.short_id,
            Snapshot.time,
            Snapshot.hostname,
            Snapshot.tags,
            Snapshot.summary,
        )
        .where(Snapshot.pod_id == pod_id, Snapshot.plan == plan)
        .order_by(Snapshot.time.desc())
    )
    return rows.all()


async def newest_made(
    session: AsyncSession, pod_id: uuid.UUID | None, plan: str
) -> tuple[Snapshot | None, Snapshot | None]:
    """The newest snapshot the service made for the pod, and the newest with a dump."""
    base = (
        select(Snapshot)
        .where(Snapshot.pod_id == pod_id, Snapshot.plan == plan, Snapshot.summary.is_not(None))
        .order_by(Snapshot.time.desc())
    )
    latest: Snapshot | None = await session.scalar(
        base.where(Snapshot.hostname == str(pod_id)).limit(1)
    )
    with_dump: Snapshot | None = await session.scalar(
        base.where(Snapshot.summary["database"]["file"].astext.is_not(None)).limit(1)
    )
    return latest, with_dump


async def set_index_status(session: AsyncSession, snapshot_pk: int, status: str) -> None:
    await session.execute(
        update(Snapshot).where(Snapshot.pk == snapshot_pk).values(index_status=status)
    )


async def set_indexed(session: AsyncSession, snapshot_pk: int, values: dict[str, Any]) -> None:
    """Record a finished index (status, time, count and restic's own snapshot fields)."""
    await session.execute(update(Snapshot).where(Snapshot.pk == snapshot_pk).values(**values))


async def copy_files(session: AsyncSession, from_pk: int, to_pk: int) -> None:
    """Give snapshot ``to_pk`` the browse index of ``from_pk`` (same tree), in SQL."""
    await session.execute(
        text(
            """INSERT INTO snapshot_files
                   (snapshot_pk, parent, name, type, size, mtime, mode, link_target, content_id)
               SELECT :to_pk, parent, name, type, size, mtime, mode, link_target, content_id
               FROM snapshot_files WHERE snapshot_pk = :from_pk"""
        ),
        {"from_pk": from_pk, "to_pk": to_pk},
    )


async def has_content_ids(session: AsyncSession, snapshot_pk: int) -> bool:
    """Whether the snapshot's index carries content ids. An index is built (or copied)
    whole, so its first file row tells; a snapshot without files has nothing to lack."""
    probe = await session.execute(
        select(SnapshotFile.content_id.is_not(None))
        .where(SnapshotFile.snapshot_pk == snapshot_pk, SnapshotFile.type == "file")
        .limit(1)
    )
    row = probe.first()
    return row is None or bool(row[0])


DIFF_BASE_CANDIDATES = 8


async def diff_base(session: AsyncSession, snap: Snapshot) -> Snapshot | None:
    """The indexed snapshot whose content ids ``snap``'s files inherit: its recorded
    parent when indexed with content ids, else the newest indexed one before it that has
    them."""
    ready = (
        Snapshot.pod_id == snap.pod_id,
        Snapshot.plan == snap.plan,
        Snapshot.pk != snap.pk,
        Snapshot.index_status == "ready",
    )
    if snap.parent:
        parent: Snapshot | None = await session.scalar(
            select(Snapshot).where(*ready, Snapshot.id == snap.parent)
        )
        if parent is not None and await has_content_ids(session, parent.pk):
            return parent
    # The newest earlier one with content ids: one whose `restic diff` failed is passed
    # over (restic's diff is exact against any snapshot), so its gap does not give every
    # later file a new id. A few candidates, not the whole history.
    earlier = await session.scalars(
        select(Snapshot)
        .where(
            *ready,
            or_(
                Snapshot.time < snap.time,
                (Snapshot.time == snap.time) & (Snapshot.pk < snap.pk),
            ),
        )
        .order_by(Snapshot.time.desc(), Snapshot.pk.desc())
        .limit(DIFF_BASE_CANDIDATES)
    )
    for previous in earlier.all():
        if await has_content_ids(session, previous.pk):
            return previous
    return None


async def content_ids(
    session: AsyncSession, snapshot_pk: int, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The content ids of the files at ``keys`` ((parent, name)) in one snapshot."""
    rows = await session.execute(
        text(
            """SELECT f.parent, f.name, f.content_id
               FROM unnest(CAST(:parents AS text[]), CAST(:names AS text[])) AS k(parent, name)
               JOIN snapshot_files AS f
                 ON f.snapshot_pk = :pk AND f.parent = k.parent AND f.name = k.name
               WHERE f.type = 'file' AND f.content_id IS NOT NULL"""
        ),
        {"pk": snapshot_pk, "parents": [k[0] for k in keys], "names": [k[1] for k in keys]},
    )
    return {(parent, name): cid for parent, name, cid in rows.all()}


async def delete_files(session: AsyncSession, snapshot_pk: int) -> None:
    await session.execute(delete(SnapshotFile).where(SnapshotFile.snapshot_pk == snapshot_pk))


async def children(
    session: AsyncSession, snapshot_pk: int, parent: str, limit: int, offset: int
) -> tuple[list[SnapshotFile], int]:
    """One page of a folder's entries by name, and how many it holds."""
    where = (SnapshotFile.snapshot_pk == snapshot_pk, SnapshotFile.parent == parent)
    total = await session.scalar(select(func.count()).select_from(SnapshotFile).where(*where))
    rows = (
        await session.scalars(
            select(SnapshotFile)
            .where(*where)
            .order_by(SnapshotFile.name)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return list(rows), int(total or 0)


async def sample_files(
    session: AsyncSession, snapshot_pk: int, count: int, max_bytes: int, seed: str
) -> list[tuple[str, str, int | None]]:
    """(parent, name, size) of up to ``count`` files of at most ``max_bytes`` outside
    /database, in the order of md5(path + seed)."""
    # the same path text `restic ls` prints, so both sources order files alike
    full = case(
        (SnapshotFile.parent == "/", "/" + SnapshotFile.name),
        else_=SnapshotFile.parent + "/" + SnapshotFile.name,
    )
    rows = await session.execute(
        select(SnapshotFile.parent, SnapshotFile.name, SnapshotFile.size)
        .where(
            SnapshotFile.snapshot_pk == snapshot_pk,
            SnapshotFile.type == "file",
            SnapshotFile.size <= max_bytes,
            not_(or_(SnapshotFile.parent == "/database", SnapshotFile.parent.like("/database/%"))),
        )
        .order_by(func.md5(full + seed))
        .limit(count)
    )
    return [(parent, name, size) for parent, name, size in rows.all()]


# A pin in force (``pin_active`` in SQL, over the snapshots row ``s``).
PIN_ACTIVE_SQL = "(s.pinned AND (s.pinned_until IS NULL OR s.pinned_until > now()))"


def _where(kind: str, pinned: str) -> str:
    """The list's filter; ``kind`` and ``pinned`` are the placeholders of those parameters."""
    return (
        "s.pod_id = $1 AND s.plan = $2 AND ($3::text IS NULL OR s.tags @> ARRAY[$3::text]) "
        f"AND ({kind}::text IS NULL OR ({KIND_SQL}) = {kind}::text) "
        f"AND ({pinned}::boolean IS NULL OR {PIN_ACTIVE_SQL} = {pinned}::boolean)"
    )


# Where a snapshot exists: the primary (plan owner) and/or the second copy (plan copy). A
# copied snapshot has a new id but its original's tree and time.
_LOCATIONS = """CASE WHEN s.plan = 'platform' THEN ARRAY['platform'] ELSE array_remove(ARRAY[
    CASE WHEN s.plan = 'owner' OR EXISTS (SELECT 1 FROM snapshots AS o WHERE o.pod_id = s.pod_id
        AND o.plan = 'owner' AND o.time = s.time AND o.tree = s.tree) THEN 'primary' END,
    CASE WHEN s.plan = 'copy' OR EXISTS (SELECT 1 FROM snapshots AS c WHERE c.pod_id = s.pod_id
        AND c.plan = 'copy' AND c.time = s.time AND c.tree = s.tree) THEN 'copy' END
], NULL) END"""
LIST_SQL = f"""
SELECT pod.account_id, page.*
FROM (SELECT account_id FROM pods WHERE id = $1) AS pod
LEFT JOIN LATERAL (
    SELECT s.*, {PIN_ACTIVE_SQL} AS pin_active, count(*) OVER () AS total,
        {_LOCATIONS} AS locations FROM snapshots AS s
    WHERE {_where("$6", "$7")}
    ORDER BY s.time DESC, s.pk DESC LIMIT $4 OFFSET $5
) AS page ON true
"""
COUNT_SQL = f"SELECT count(*) FROM snapshots AS s WHERE {_where('$4', '$5')}"


async def list_page(
    source: fastread.Source,
    pod_id: uuid.UUID,
    plan: str,
    tag: str | None,
    limit: int,
    offset: int,
    kind: str | None,
    pinned: bool | None = None,
) -> list[Any]:
    """The pod's account and one page of its snapshots with the total, in one plain
    statement: one row with a null ``pk`` when the page is empty, none when the pod is
    missing. ``pinned``: only snapshots pinned now (true) or not (false)."""
    return await fastread.fetch(source, LIST_SQL, pod_id, plan, tag, limit, offset, kind, pinned)


async def count_listed(
    source: fastread.Source,
    pod_id: uuid.UUID,
    plan: str,
    tag: str | None,
    kind: str | None,
    pinned: bool | None = None,
) -> int:
    total = await fastread.fetchrow(source, COUNT_SQL, pod_id, plan, tag, kind, pinned)
    return int(total[0]) if total else 0


async def pin(
    session: AsyncSession,
    snapshot_pk: int,
    *,
    until: datetime | None,
    note: str | None,
    by: str,
    replace: bool = False,
) -> None:
    """Pin a snapshot: retention keeps it until ``until`` (null: until unpinned). A pin
    that lasts longer already stays: pinning never shortens an existing pin, unless
    ``replace`` (the owner setting the pin by hand: what they ask is what holds)."""
    snap = await session.get(Snapshot, snapshot_pk)
    if snap is None:
        return
    if (
        not replace
        and snap.pinned
        and pin_active(snap)
        and (snap.pinned_until is None or (until is not None and snap.pinned_until >= until))
    ):
        if note and not snap.pin_note:
            snap.pin_note = note
        return
    snap.pinned = True
    snap.pinned_until = until
    snap.pin_note = note
    snap.pinned_at = utcnow()
    snap.pinned_by = by


async def unpin(session: AsyncSession, snapshot_pk: int) -> None:
    await session.execute(
        update(Snapshot)
        .where(Snapshot.pk == snapshot_pk)
        .values(pinned=False, pinned_until=None, pin_note=None, pinned_at=None, pinned_by=None)
    )


def pin_active(snap: Snapshot, now: datetime | None = None) -> bool:
    """Pinned now: pinned, and its pin has no end or ends later."""
    if not snap.pinned:
        return False
    return snap.pinned_until is None or snap.pinned_until > (now or utcnow())


def _pinned_now(pod_id: uuid.UUID, plan: str) -> list[Any]:
    """The pod's snapshots whose pin is in force now (``PIN_ACTIVE_SQL``, as a filter)."""
    now = utcnow()
    return [
        Snapshot.pod_id == pod_id,
        Snapshot.plan == plan,
        Snapshot.pinned.is_(True),
        (Snapshot.pinned_until.is_(None)) | (Snapshot.pinned_until > now),
    ]


async def pinned_ids(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> set[str]:
    """Full ids of the pod's snapshots pinned now (retention keeps them)."""
    return set(await session.scalars(select(Snapshot.id).where(*_pinned_now(pod_id, plan))))


async def pinned_rows(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> list[Snapshot]:
    """The pod's snapshots pinned now, with their notes and ends (the retention plan)."""
    return list(await session.scalars(select(Snapshot).where(*_pinned_now(pod_id, plan))))
