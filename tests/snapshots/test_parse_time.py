from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from app.snapshots.repository import parse_time


def test_restic_times_keep_their_zone() -> None:
    assert parse_time("2026-11-26T06:47:44.805870557Z") == datetime(
        2026, 11, 26, 6, 47, 44, 805870, tzinfo=UTC
    )
    plus2 = parse_time("2026-11-26T08:47:44.102307359+02:00")
    assert plus2.utcoffset() == timedelta(hours=2)
    assert plus2 == datetime(2026, 11, 26, 6, 47, 44, 102307, tzinfo=UTC)
    assert parse_time("2026-11-26T06:47:44Z").tzinfo is not None
    assert parse_time("2026-11-26T06:47:44.5-05:00").tzinfo == timezone(timedelta(hours=-5))
