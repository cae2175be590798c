"""Every SQL query of snapshot diffs and file histories (on snapshots and snapshot_files)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.history.changes import CHANGES
from app.models import Snapshot

# The two indexes side by side (a merge join along the primary key of each), and the
# change of each entry: null when unchanged. A folder's metadata is not compared (every
# change below a folder touches its mtime): a folder shows only when added, removed or
# of another type. A file is modified when its content id (or size) differs, else its
# metadata changed when mode or mtime differ; a link's target is metadata, as in restic.
# The two indexes side by side (both read along their primary key), and the change of
# each entry: null when unchanged. A folder's metadata is not compared (every change
# below a folder touches its mtime): a folder shows only when added, removed or of
# another type. A file is modified when its content id (or size) differs, else its
# metadata changed when mode or mtime differ; a link's target is metadata, as in restic.
# The changed entries are kept (few, usually): the totals and one page come from them in
# the same statement.
_TOTALS = ",\n".join(
    f"count(*) FILTER (WHERE change = '{c}') AS {c}_entries,\n"
    f"count(*) FILTER (WHERE change = '{c}' AND type = 'file') AS {c}_files,\n"
    f"coalesce(sum(CASE WHEN change = 'removed' THEN size_before ELSE size_after END)"
    f" FILTER (WHERE change = '{c}' AND type = 'file'), 0) AS {c}_bytes"
    for c in CHANGES
)
_DIFF = f"""
WITH j AS (
    SELECT coalesce(a.parent, b.parent) AS parent,
           coalesce(a.name, b.name) AS name,
           coalesce(a.type, b.type) AS type,
           a.size AS size_after, b.size AS size_before,
           a.mtime AS mtime_after, b.mtime AS mtime_before,
           a.mode AS mode_after, b.mode AS mode_before,
           CASE
               WHEN b.name IS NULL THEN 'added'
               WHEN a.name IS NULL THEN 'removed'
               WHEN a.type <> b.type THEN 'type'
               WHEN a.type = 'file' AND (a.content_id IS DISTINCT FROM b.content_id
                                         OR a.size IS DISTINCT FROM b.size) THEN 'modified'
               WHEN a.type <> 'dir' AND (a.mode IS DISTINCT FROM b.mode
                                         OR a.mtime IS DISTINCT FROM b.mtime
                                         OR a.link_target IS DISTINCT FROM b.link_target)
                   THEN 'metadata'
           END AS change
    FROM (SELECT * FROM snapshot_files WHERE snapshot_pk = :after) AS a
    FULL JOIN (SELECT * FROM snapshot_files WHERE snapshot_pk = :before) AS b
      ON a.parent = b.parent AND a.name = b.name
),
c AS MATERIALIZED (
    SELECT CASE WHEN parent = '/' THEN '/' || name ELSE parent || '/' || name END AS path,
           change, type, size_before, size_after, mtime_before, mtime_after,
           mode_before, mode_after
    FROM j WHERE change IS NOT NULL
)
SELECT t.*, p.*
FROM (SELECT {_TOTALS} FROM c) AS t
LEFT JOIN LATERAL (
    SELECT * FROM c
    WHERE CAST(:change AS text) IS NULL OR change = CAST(:change AS text)
    ORDER BY path COLLATE "C"
    LIMIT :limit OFFSET :offset
) AS p ON true
"""


async def diff(
    session: AsyncSession, after: int, before: int, change: str | None, limit: int, offset: int
) -> list[Row[Any]]:
    """One page of the changed entries by path (``path`` null when the page is empty),
    each row with the totals per change: ``<change>_entries``, ``_files``, ``_bytes``."""
    # A statement of milliseconds whose cost estimate (two trees of 100,000 rows) would
    # otherwise start the JIT compiler: ~30 ms of compiling for nothing.
    await session.execute(text("SET LOCAL jit = off"))
    rows = await session.execute(
        text(_DIFF),
        {"after": after, "before": before, "change": change, "limit": limit, "offset": offset},
    )
    return list(rows.all())


async def rows_at(
    session: AsyncSession, snapshot_pk: int, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Row[Any]]:
    """The index rows at ``keys`` ((parent, name)) in one snapshot."""
    if not keys:
        return {}
    rows = await session.execute(
        text(
            """SELECT f.parent, f.name, f.type, f.size, f.mtime, f.mode, f.link_target
               FROM unnest(CAST(:parents AS text[]), CAST(:names AS text[])) AS k(parent, name)
               JOIN snapshot_files AS f
                 ON f.snapshot_pk = :pk AND f.parent = k.parent AND f.name = k.name"""
        ),
        {"pk": snapshot_pk, "parents": [k[0] for k in keys], "names": [k[1] for k in keys]},
    )
    return {(r.parent, r.name): r for r in rows.all()}


async def descendants(session: AsyncSession, snapshot_pk: int, path: str) -> list[Row[Any]]:
    """Every row below folder ``path`` in one snapshot."""
    rows = await session.execute(
        text(
            """SELECT parent, name, type, size, mtime, mode, link_target FROM snapshot_files
               WHERE snapshot_pk = :pk AND (parent = :path OR starts_with(parent, :below))"""
        ),
        {"pk": snapshot_pk, "path": path, "below": path.rstrip("/") + "/"},
    )
    return list(rows.all())


async def previous(session: AsyncSession, snap: Snapshot) -> Snapshot | None:
    """The pod's snapshot (same plan) just before ``snap`` by time."""
    row: Snapshot | None = await session.scalar(
        select(Snapshot)
        .where(
            Snapshot.pod_id == snap.pod_id,
            Snapshot.plan == snap.plan,
            Snapshot.pk != snap.pk,
            or_(
                Snapshot.time < snap.time,
                (Snapshot.time == snap.time) & (Snapshot.pk < snap.pk),
            ),
        )
        .order_by(Snapshot.time.desc(), Snapshot.pk.desc())
        .limit(1)
    )
    return row


async def by_id(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, snapshot_id: str
) -> Snapshot | None:
    row: Snapshot | None = await session.scalar(
        select(Snapshot).where(
            Snapshot.pod_id == pod_id, Snapshot.plan == plan, Snapshot.id == snapshot_id
        )
    )
    return row


_HISTORY = """
SELECT s.id, s.short_id, s.time, s.index_status,
       f.type, f.size, f.mtime, f.mode, f.content_id
FROM snapshots AS s
LEFT JOIN snapshot_files AS f
  ON f.snapshot_pk = s.pk AND f.parent = :parent AND f.name = :name
WHERE s.pod_id = :pod_id AND s.plan = :plan
ORDER BY s.time DESC, s.pk DESC
"""


async def history(
    session: AsyncSession, pod_id: uuid.UUID, plan: str, parent: str, name: str
) -> list[Row[Any]]:
    """Every snapshot of (pod, plan), newest first, with its row for one path (nulls
    where it has none): one primary-key lookup per snapshot."""
    rows = await session.execute(
        text(_HISTORY), {"pod_id": pod_id, "plan": plan, "parent": parent, "name": name}
    )
    return list(rows.all())
