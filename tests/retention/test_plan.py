"""Assembling a retention plan from `forget --dry-run --json` output (0.14 and 0.17+ shapes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from app.retention.service import (
    PROTECTED_REASON,
    Known,
    PlannedSnapshot,
    assemble,
    clean_policy,
    parse_time,
)

POD = uuid.UUID("11111111-2222-3333-4444-555555555555")


def snap(n: int, host: str = str(POD), tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": f"{n:064x}",
        "short_id": f"{n:08x}",
        "time": f"2025-01-0{n}T01:00:00.123456789Z",
        "tree": f"tree{n}",
        "hostname": host,
        "tags": tags if tags is not None else [f"pod:{POD}"],
    }


def row(n: int, status: str | None, host: str = str(POD)) -> PlannedSnapshot:
    s = snap(n, host)
    return PlannedSnapshot(
        s["id"], s["short_id"], parse_time(s["time"]), host, s["tags"], status=status
    )


def group(keep: list[int], remove: list[int], with_ids: bool) -> dict[str, Any]:
    reasons = []
    for n in keep:
        shown = {k: v for k, v in snap(n).items() if with_ids or k not in ("id", "short_id")}
        reasons.append({"snapshot": shown, "matches": ["last snapshot"], "counters": {}})
    return {
        "host": str(POD),
        "keep": [snap(n) for n in keep],
        "remove": [snap(n) for n in remove],
        "reasons": reasons,
    }


@pytest.mark.parametrize("with_ids", [False, True])
def test_the_newest_successful_moves_from_remove_to_keep(with_ids: bool) -> None:
    # restic keeps 3 (newest, a partial), would remove 2 (the last success) and 1.
    known = Known({s.id: s for s in (row(3, "partial"), row(2, "succeeded"))}, f"{2:064x}")
    known.rows[f"{9:064x}"] = row(9, None, host="laptop")
    plan = assemble([group([3], [2, 1], with_ids)], {"keep_last": 1}, POD, known)
    assert [s.id for s in plan.keep] == [f"{3:064x}", f"{2:064x}"]
    assert plan.keep[0].reasons == ["last snapshot"]
    assert plan.keep[0].status == "partial"
    assert plan.keep[1].reasons == [PROTECTED_REASON]
    assert plan.remove_ids == [f"{1:064x}"]
    assert [s.hostname for s in plan.untouched] == ["laptop"]
    assert "laptop" in plan.untouched[0].reasons[0]
    assert plan.keep[0].time == datetime(2025, 1, 3, 1, 0, 0, 123456, tzinfo=UTC)


def test_policy_needs_a_rule() -> None:
    assert clean_policy({"keep_last": 0, "keep_daily": 7, "prune_interval_days": 7}) == {
        "keep_daily": 7
    }
    with pytest.raises(ValueError, match="no keep rule"):
        clean_policy({"keep_last": 0})
