"""The time maths with a controlled clock: windows across midnight, DST, stable offsets."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.scheduler import planning
from app.scheduler.planning import Cursors, Offsets, Window

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def window(start: str, end: str, tz: str) -> Window:
    w = Window.parse({"enabled": True, "window_start": start, "window_end": end, "timezone": tz})
    assert w is not None
    return w


def pod_ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid5(uuid.NAMESPACE_URL, f"pod-{i}") for i in range(n)]


def in_wall_window(w: Window, at: datetime) -> bool:
    """Whether the local wall time of ``at`` lies within the window (inclusive)."""
    wall = at.astimezone(w.zone).time().replace(tzinfo=None)
    if w.start < w.end:
        return w.start <= wall <= w.end
    return wall >= w.start or wall <= w.end


def night_of(w: Window, at: datetime) -> date:
    """The local date on which the window holding ``at`` opened."""
    local = at.astimezone(w.zone)
    if w.start > w.end and local.time() <= w.end:
        return local.date() - timedelta(days=1)
    return local.date()


def simulate(
    w: Window, frac: float, start: datetime, days: int, down: tuple[datetime, datetime] | None
) -> list[datetime]:
    """A tick every minute (none while ``down``): the runs the scheduler would make."""
    cursor = w.next_slot(frac, start)
    runs = []
    t = start
    while t < start + timedelta(days=days):
        if not (down and down[0] <= t < down[1]) and t >= cursor:
            runs.append(t)
            cursor = w.next_slot(frac, t)
        t += timedelta(minutes=1)
    return runs


@pytest.mark.parametrize(
    ("tz", "start", "end", "transition"),
    [
        (BERLIN, "01:00", "04:00", date(2025, 3, 30)),  # 02:00 → 03:00 inside the window
        (BERLIN, "02:30", "03:30", date(2025, 3, 30)),  # the window opens in the gap
        (BERLIN, "01:00", "04:00", date(2025, 10, 26)),  # 03:00 → 02:00: an hour twice
        (BERLIN, "02:15", "02:45", date(2025, 10, 26)),  # the whole window happens twice
        (BERLIN, "23:00", "03:00", date(2025, 3, 29)),  # across midnight into the change
        (NEW_YORK, "00:30", "03:30", date(2025, 3, 9)),
        (NEW_YORK, "02:00", "02:59", date(2025, 3, 9)),  # the whole window does not exist
        (NEW_YORK, "01:00", "02:00", date(2025, 11, 2)),  # 01:00-02:00 happens twice
        (NEW_YORK, "22:00", "02:30", date(2025, 11, 1)),
    ],
)
def test_dst_one_run_per_local_night_inside_the_window(
    tz: str, start: str, end: str, transition: date
) -> None:
    w = window(start, end, tz)
    begin = datetime.combine(transition - timedelta(days=3), time(12), tzinfo=ZoneInfo(tz))
    for pod_id in pod_ids(12):
        frac = Offsets.of(pod_id).backup
        runs = simulate(w, frac, begin.astimezone(UTC), days=5, down=None)
        nights = [night_of(w, r) for r in runs]
        # One run per local night, five nights in a row, none skipped or doubled.
        assert len(runs) == 5
        assert nights == [nights[0] + timedelta(days=i) for i in range(5)]
        assert transition in nights
        for night, run in zip(nights, runs, strict=True):
            opens, closes = w.bounds(night)
            assert opens <= run <= closes + timedelta(minutes=1)  # ticks are a minute apart
            slot = w.slot(night, frac)
            assert opens <= slot <= closes
            if opens < closes:
                assert in_wall_window(w, slot), (night, slot.astimezone(w.zone))


def test_window_in_a_gap_collapses_to_the_jump() -> None:
    w = window("02:00", "02:59", NEW_YORK)
    opens, closes = w.bounds(date(2025, 3, 9))
    assert opens == closes == datetime(2025, 3, 9, 7, 0, tzinfo=UTC)  # 03:00 EDT
    # The next night is a normal 59-minute window again.
    opens, closes = w.bounds(date(2025, 3, 10))
    assert (opens, closes - opens) == (
        datetime(2025, 3, 10, 6, 0, tzinfo=UTC),
        timedelta(minutes=59),
    )


def test_fall_back_window_is_longer_in_real_time() -> None:
    w = window("01:00", "04:00", BERLIN)
    opens, closes = w.bounds(date(2025, 10, 26))
    assert opens == datetime(2025, 10, 25, 23, 0, tzinfo=UTC)  # 01:00 CEST
    assert closes - opens == timedelta(hours=4)
    opens, closes = w.bounds(date(2025, 3, 30))
    assert closes - opens == timedelta(hours=2)


def test_window_across_midnight() -> None:
    w = window("23:00", "03:00", "UTC")
    frac = 0.5
    assert w.slot(date(2025, 6, 1), frac) == datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
    # From inside the window before the slot: tonight's; after it: tomorrow night's.
    at = datetime(2025, 6, 2, 0, 30, tzinfo=UTC)
    assert w.next_slot(frac, at) == datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
    at = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
    assert w.next_slot(frac, at) == datetime(2025, 6, 3, 1, 0, tzinfo=UTC)
    at = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert w.next_slot(frac, at) == datetime(2025, 6, 2, 1, 0, tzinfo=UTC)


def test_outage_of_six_hours_gives_one_run_not_six() -> None:
    w = window("00:00", "06:00", "UTC")
    frac = 0.1  # 00:36
    begin = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    down = (datetime(2025, 6, 2, 0, 0, tzinfo=UTC), datetime(2025, 6, 2, 6, 0, tzinfo=UTC))
    runs = simulate(w, frac, begin, days=2, down=down)
    assert runs == [
        datetime(2025, 6, 2, 6, 0, tzinfo=UTC),  # the missed night, once, when back up
        datetime(2025, 6, 3, 0, 36, tzinfo=UTC),
    ]


def test_offsets_are_stable_and_spread() -> None:
    ids = pod_ids(1000)
    assert [Offsets.of(i) for i in ids[:20]] == [Offsets.of(i) for i in ids[:20]]
    w = window("01:00", "05:00", BERLIN)
    night = date(2025, 6, 1)
    per_minute = Counter(w.slot(night, Offsets.of(i).backup).replace(second=0) for i in ids)
    mean = 1000 / 240
    assert max(per_minute.values()) <= 4 * mean
    assert len(per_minute) > 200  # nearly every minute of the window is used
    for pod_id in ids:
        o = Offsets.of(pod_id)
        assert 0 <= o.backup < o.prune < o.check < 1
        assert o.prune < o.backup + (1 - o.backup) / 2 <= o.check


def test_parse_refuses_what_cannot_be_scheduled() -> None:
    ok = {"enabled": True, "window_start": "01:00", "window_end": "05:00", "timezone": "UTC"}
    assert Window.parse(ok) is not None
    for bad in (
        {**ok, "enabled": False},
        {**ok, "enabled": "yes"},
        {**ok, "timezone": "Mars/Olympus"},
        {**ok, "window_start": "25:00"},
        {**ok, "window_end": "01:00"},
        {},
        None,
    ):
        assert Window.parse(bad) is None, bad


def _schedule(**over: object) -> planning.PodSchedule:
    sched = planning.schedule_of(
        pod_ids(1)[0],
        {"enabled": True, "window_start": "01:00", "window_end": "05:00", "timezone": BERLIN},
        {"keep_daily": 7, "prune_interval_days": 7},
        {"enabled": True, "interval_days": 14},
        True,
    )
    assert sched is not None
    return sched


def test_cadences() -> None:
    pod = _schedule()
    assert (pod.prune_days, pod.check_days) == (7, 14)
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    cursors = planning.plan(pod, now)
    assert cursors.next_run_at is not None
    assert cursors.next_prune_at is not None
    assert cursors.next_check_at is not None
    assert now < cursors.next_run_at < now + timedelta(days=1)
    # New cadences start on a per-pod night within their interval.
    assert now < cursors.next_prune_at < now + timedelta(days=8)
    assert now < cursors.next_check_at < now + timedelta(days=15)
    # Planning again changes nothing (idempotent), also just after a run.
    assert planning.plan(pod, now, cursors) == cursors
    ran = cursors.next_prune_at + timedelta(minutes=1)
    after = planning.after_run(pod, "prune", ran)
    assert after - cursors.next_prune_at == timedelta(days=7)
    after = planning.after_run(pod, "check", ran)
    assert timedelta(days=13) < after - ran < timedelta(days=15)


def test_replan_keeps_the_night_and_due_cursors() -> None:
    pod = _schedule()
    now = datetime(2025, 6, 1, 2, 30, tzinfo=UTC)
    prune_slot = pod.window.slot(date(2025, 6, 4), pod.offsets.prune)
    due = Cursors(now - timedelta(minutes=5), prune_slot, None)
    cursors = planning.plan(pod, now, due)
    assert cursors.next_run_at == due.next_run_at  # still due: the tick takes it
    assert cursors.next_prune_at == due.next_prune_at  # same night, same window
    assert cursors.next_check_at is not None
    # Tonight's run happened; moving the window later must not run the pod twice tonight.
    ran = Cursors(datetime(2025, 6, 2, 1, 0, tzinfo=UTC), None, None)
    later = planning.schedule_of(
        pod.pod_id,
        {"enabled": True, "window_start": "04:40", "window_end": "05:00", "timezone": BERLIN},
        None,
        None,
        True,
    )
    assert later is not None
    moved = planning.plan(later, now, ran)
    assert moved.next_run_at is not None
    assert moved.next_run_at.date() == date(2025, 6, 2)


def test_not_scheduled_without_verified_enabled_settings() -> None:
    on = {"enabled": True, "window_start": "01:00", "window_end": "05:00", "timezone": "UTC"}
    pod_id = pod_ids(1)[0]
    assert planning.schedule_of(pod_id, on, None, None, None) is None
    assert planning.schedule_of(pod_id, on, None, None, False) is None
    assert planning.schedule_of(pod_id, {**on, "enabled": False}, None, None, True) is None
    off = planning.schedule_of(pod_id, on, None, {"enabled": False}, True)
    assert off is not None
    assert off.check_days is None
    assert off.prune_days == 7
    assert planning.plan(None, datetime(2025, 6, 1, tzinfo=UTC)) == planning.NOT_SCHEDULED
