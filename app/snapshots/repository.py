"""Every SQL query on snapshots."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.models import Snapshot
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
