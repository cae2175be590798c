"""The pure parts of diffs and histories: restic's modifiers, totals, the database dump's
change, and a path's rows grouped into versions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.history.schemas import (
    ChangeTotal,
    DatabaseChange,
    DiffItem,
    DiffTotals,
    SnapshotRef,
    TableRows,
)
from app.snapshots.dumps import recorded_dump

CHANGES = ("added", "removed", "modified", "metadata", "type")


def change_of(modifier: str) -> str | None:
    """restic diff's modifier as a change: ``+`` added, ``-`` removed, ``T`` (maybe with
    ``M`` or ``U``) type, ``M`` content, ``U`` metadata only."""
    if modifier == "+":
        return "added"
    if modifier == "-":
        return "removed"
    if "T" in modifier:
        return "type"
    if "M" in modifier:
        return "modified"
    if "U" in modifier:
        return "metadata"
    return None


def totals_of(items: Iterable[DiffItem], sizes_known: bool) -> DiffTotals:
    counts = {c: {"files": 0, "bytes": 0, "entries": 0} for c in CHANGES}
    for item in items:
        total = counts[item.change]
        total["entries"] += 1
        if item.type == "file":
            total["files"] += 1
            size = item.size_before if item.change == "removed" else item.size_after
            total["bytes"] += size or 0
    return DiffTotals(
        **{
            c: ChangeTotal(
                files=v["files"], bytes=v["bytes"] if sizes_known else None, entries=v["entries"]
            )
            for c, v in counts.items()
        }
    )


def totals_from_row(row: Any) -> DiffTotals:
    """The totals of ``repository.diff``'s answer (any of its rows)."""
    return DiffTotals(
        **{
            c: ChangeTotal(
                files=int(getattr(row, f"{c}_files")),
                bytes=int(getattr(row, f"{c}_bytes")),
                entries=int(getattr(row, f"{c}_entries")),
            )
            for c in CHANGES
        }
    )


# -- the database dump ---------------------------------------------------------------------


def _dump_path(record: dict[str, Any]) -> str:
    return "/" + str(record["file"]).lstrip("/")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tables(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[TableRows]:
    old = (before or {}).get("tables")
    new = (after or {}).get("tables")
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    out = []
    for table in sorted(set(old) | set(new)):
        rows_before, rows_after = _int(old.get(table)), _int(new.get(table))
        if table not in new:
            change = "removed"
        elif table not in old:
            change = "added"
        else:
            change = "unchanged" if rows_before == rows_after else "changed"
        out.append(
            TableRows(
                table=str(table), rows_before=rows_before, rows_after=rows_after, change=change
            )
        )
    return out


def database_changes(summary_after: Any, summary_before: Any) -> list[DatabaseChange]:
    """The dump file's change and its tables' row counts, from what each backup recorded
    (``summary["database"]``); nothing for a snapshot whose dump the service did not make."""
    after, before = recorded_dump(summary_after), recorded_dump(summary_before)
    pairs: list[tuple[dict[str, Any] | None, dict[str, Any] | None]]
    if after and before and _dump_path(after) == _dump_path(before):
        pairs = [(before, after)]
    else:
        pairs = [(before, None)] if before else []
        pairs += [(None, after)] if after else []
    out = []
    for old, new in pairs:
        if old and new:
            change = "unchanged" if old.get("sha256") == new.get("sha256") else "modified"
        else:
            change = "added" if new else "removed"
        out.append(
            DatabaseChange(
                file=_dump_path(new or old or {}),
                change=change,
                size_before=_int((old or {}).get("bytes")),
                size_after=_int((new or {}).get("bytes")),
                sha256_before=(old or {}).get("sha256"),
                sha256_after=(new or {}).get("sha256"),
                tables=_tables(old, new),
            )
        )
    return out


# -- versions of one path ------------------------------------------------------------------


@dataclass
class Group:
    """Consecutive snapshots holding one version of a path (newest first as built)."""

    newest: Any  # the rows (``repository.history``) of its newest and oldest snapshot
    oldest: Any
    count: int = 1
    exact: bool = True

    @staticmethod
    def ref(row: Any) -> SnapshotRef:
        return SnapshotRef(id=row.id, short_id=row.short_id, time=row.time)


@dataclass
class Scan:
    groups: list[Group] = field(default_factory=list)
    scanned: int = 0
    without_path: int = 0
    not_ready: int = 0
    without_content_id: int = 0


def _same(newer: Any, older: Any) -> bool:
    """One version: the same content id, or, where either row has none, the same type,
    size and mtime."""
    if newer.type != older.type:
        return False
    if newer.content_id and older.content_id:
        return bool(newer.content_id == older.content_id)
    return bool(newer.size == older.size and newer.mtime == older.mtime)


def group_versions(rows: Iterable[Any]) -> Scan:
    """``rows``: every snapshot newest first with its row for the path (``type`` null
    when it has none). A snapshot whose index is not ready is skipped (counted): it
    neither holds nor breaks a version; an indexed one without the path ends one."""
    scan = Scan()
    current: Group | None = None
    for row in rows:
        scan.scanned += 1
        if row.index_status != "ready":
            scan.not_ready += 1
            continue
        if row.type is None:
            scan.without_path += 1
            current = None
            continue
        if not row.content_id:
            scan.without_content_id += 1
        if current is not None and _same(current.oldest, row):
            current.oldest = row
            current.count += 1
            current.exact = current.exact and bool(row.content_id)
            continue
        current = Group(newest=row, oldest=row, exact=bool(row.content_id))
        scan.groups.append(current)
    return scan
