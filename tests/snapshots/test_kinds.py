"""A snapshot's kind is decided the same way in Python (lists, one snapshot, retention) and
in SQL (`latest`, the kind filter, status), from the service's record before the tags."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from app.snapshots.kinds import KIND_SQL, kind_of, trigger_of

CASES: list[tuple[Any, list[str] | None, str, str | None]] = [
    # (summary, tags, kind, trigger)
    ({"status": "succeeded"}, ["trigger:scheduled"], "backup", "scheduled"),
    ({"safety": True}, ["trigger:manual", "safety:before-restore"], "safety", "manual"),
    # a recorded safety snapshot whose tags the owner stripped: still safety
    ({"safety": True}, [], "safety", None),
    # a recorded backup the owner tagged "safety": the record wins
    ({"status": "succeeded"}, ["safety:before-restore"], "backup", None),
    # found by a refresh: its tags prove nothing, except that a safety tag keeps it off latest
    (None, ["trigger:manual"], "imported", None),
    (None, ["safety:before-restore", "trigger:manual"], "safety", None),
    ("null", None, "imported", None),
    ({"imported": True}, ["trigger:manual"], "imported", None),
]


@pytest.mark.parametrize(("summary", "tags", "kind", "trigger"), CASES)
async def test_python_and_sql_agree(
    database_url: str, summary: Any, tags: list[str] | None, kind: str, trigger: str | None
) -> None:
    python_summary = None if summary == "null" else summary
    assert kind_of(python_summary, tags) == kind
    assert trigger_of(python_summary, tags) == trigger
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        raw = None if summary is None else json.dumps(summary if summary != "null" else None)
        got = await conn.fetchval(
            f"SELECT {KIND_SQL} FROM (SELECT $1::jsonb AS summary, $2::text[] AS tags) AS s",
            raw,
            tags,
        )
    finally:
        await conn.close()
    assert got == kind
