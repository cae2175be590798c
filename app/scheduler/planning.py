"""Pure time maths of the nightly window: no I/O and no clock (``now`` is always passed in).

A pod's *night* D is the window that opens at ``window_start`` on local date D and closes at
``window_end`` (on D, or on D+1 when the window crosses midnight). Both ends are turned into
instants first, and the run is placed at a stable fraction of the real (UTC) length between
them. So on a DST night the window is an hour shorter or longer, the run still lies inside
it, and every night has exactly one run:

- a wall time that happens twice (fall back) means its first occurrence;
- a wall time that does not exist (spring forward) means the instant the clock jumps.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
HALF_DAY = timedelta(hours=12)
DEFAULT_INTERVAL_DAYS = 7


@dataclass(frozen=True, eq=False)  # identity hash: parse() interns equal windows
class Window:
    """A nightly window: wall-clock start and end in an IANA time zone."""

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, schedule: Mapping[str, Any] | None) -> Window | None:
        """The window of an enabled, well-formed schedule; None otherwise (not scheduled)."""
        if not schedule or schedule.get("enabled") is not True:
            return None
        start, end = schedule.get("window_start"), schedule.get("window_end")
        zone = schedule.get("timezone")
        if isinstance(start, str) and isinstance(end, str) and isinstance(zone, str):
            return _window(start, end, zone)
        return None

    def bounds(self, night: date) -> tuple[datetime, datetime]:
        """Opening and closing instants (UTC) of the window of local night ``night``."""
        return _bounds(self, night)

    def slot(self, night: date, fraction: float) -> datetime:
        """The instant at ``fraction`` (0 ≤ f < 1) of the night's window, whole seconds."""
        opens, closes = self.bounds(night)
        length = int((closes - opens).total_seconds())
        return opens + timedelta(seconds=int(fraction * length))

    def next_slot(self, fraction: float, after: datetime) -> datetime:
        """The first slot strictly after ``after`` (nights in order: one run per night)."""
        day = after.astimezone(self.zone).date()
        # Only a window across midnight can still be open from the previous night.
        for delta in range(-1 if self.end < self.start else 0, 4):
            candidate = self.slot(day + timedelta(days=delta), fraction)
            if candidate > after:
                return candidate
        raise AssertionError(f"no slot after {after} in {self}")  # pragma: no cover


@lru_cache(maxsize=4096)
def _window(start_text: str, end_text: str, zone_name: str) -> Window | None:
    start, end = _parse_hhmm(start_text), _parse_hhmm(end_text)
    zone = _parse_zone(zone_name)
    if start is None or end is None or zone is None or start == end:
        return None
    return Window(start, end, zone)


def _parse_hhmm(value: str) -> time | None:
    match = _HHMM.match(value)
    return time(int(match.group(1)), int(match.group(2))) if match else None


def _parse_zone(value: str) -> ZoneInfo | None:
    if not value:
        return None
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=65536)
def _bounds(window: Window, night: date) -> tuple[datetime, datetime]:
    opens = instant(night, window.start, window.zone)
    end_day = night if window.end > window.start else night + timedelta(days=1)
    closes = instant(end_day, window.end, window.zone)
    return opens, max(opens, closes)


def instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time: its first occurrence, or the jump over a gap."""
    local = datetime.combine(day, at, tzinfo=zone)  # fold=0: the first occurrence
    utc = local.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return utc
    # In a gap, fold=0 reads the wall time with the offset from before the jump, fold=1 with
    # the one after; the jump lies between the two instants.
    return _jump(local.replace(fold=1).astimezone(UTC), utc, zone)


def _jump(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in (before, after] with ``after``'s UTC offset (bisect to 1 s)."""
    target = after.astimezone(zone).utcoffset()
    lo, hi = before, after
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi


def fractions(pod_id: uuid.UUID) -> list[float]:
    """Eight stable, independent numbers in [0, 1) for this pod (SHA-512 of its id, not
    Python's per-process hash())."""
    digest = hashlib.sha512(b"podbackup-schedule:" + pod_id.bytes).digest()
    return [int.from_bytes(digest[i : i + 8], "big") / 2.0**64 for i in range(0, 64, 8)]


@dataclass(frozen=True)
class Offsets:
    """Where in the window each job kind runs. Prune and check come after the backup (prune
    in the first half of what is left, check in the second), so on a night when several are
    due they start in order and a busy pod is only retried, never doubled."""

    backup: float
    prune: float
    check: float
    prune_day: float  # which night of the cadence a new pod starts on
    check_day: float

    @classmethod
    def of(cls, pod_id: uuid.UUID) -> Offsets:
        backup, prune, check, prune_day, check_day, *_ = fractions(pod_id)
        rest = 1.0 - backup
        return cls(
            backup=backup,
            prune=backup + rest * (0.05 + 0.45 * prune),
            check=backup + rest * (0.5 + 0.5 * check),
            prune_day=prune_day,
            check_day=check_day,
        )


@dataclass(frozen=True)
class PodSchedule:
    """Everything planning needs about one pod: its window and cadences."""

    pod_id: uuid.UUID
    window: Window
    offsets: Offsets
    prune_days: int
    check_days: int | None  # None: verification is off


@dataclass(frozen=True)
class Cursors:
    next_run_at: datetime | None = None
    next_prune_at: datetime | None = None
    next_check_at: datetime | None = None


NOT_SCHEDULED = Cursors()


def schedule_of(
    pod_id: uuid.UUID,
    schedule: Mapping[str, Any] | None,
    retention: Mapping[str, Any] | None,
    verification: Mapping[str, Any] | None,
    verified_ok: bool | None,
) -> PodSchedule | None:
    """The pod's schedule from its settings; None when disabled, unverified or malformed."""
    if verified_ok is not True:
        return None
    window = Window.parse(schedule)
    if window is None:
        return None
    verification = verification or {}
    return PodSchedule(
        pod_id=pod_id,
        window=window,
        offsets=Offsets.of(pod_id),
        prune_days=_days((retention or {}).get("prune_interval_days")),
        check_days=None
        if verification.get("enabled") is False
        else _days(verification.get("interval_days")),
    )


def _days(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 366:
        return value
    return DEFAULT_INTERVAL_DAYS


def plan(pod: PodSchedule | None, now: datetime, existing: Cursors = NOT_SCHEDULED) -> Cursors:
    """Cursors after settings were created or changed (or for a pod never planned).

    A cursor already due stays (the next tick takes it). A future one is moved onto the
    (possibly new) window of about the same night, never earlier than 12 h before it, so
    changing a window right after tonight's run does not run the pod twice tonight. A new
    prune/check cursor starts on a per-pod night of its cadence, spreading the load.
    """
    if pod is None:
        return NOT_SCHEDULED
    window, offsets = pod.window, pod.offsets

    def cursor(frac: float, current: datetime | None, days: int | None, day: float) -> datetime:
        if current is not None and current <= now:
            return current
        if current is not None:
            after = current - HALF_DAY
            if days is not None:
                after = min(after, now + timedelta(days=days) - HALF_DAY)
            return window.next_slot(frac, max(after, now))
        start = now + timedelta(days=int(day * days)) if days is not None else now
        return window.next_slot(frac, start)

    return Cursors(
        next_run_at=cursor(offsets.backup, existing.next_run_at, None, 0.0),
        next_prune_at=cursor(
            offsets.prune, existing.next_prune_at, pod.prune_days, offsets.prune_day
        ),
        next_check_at=None
        if pod.check_days is None
        else cursor(offsets.check, existing.next_check_at, pod.check_days, offsets.check_day),
    )


def after_run(pod: PodSchedule, kind: str, now: datetime) -> datetime:
    """The cursor once a ``kind`` job was created (or found running) at ``now``.

    Backups go to the next slot after now, so hours of missed nights become one run. Prune
    and check go to the slot about ``interval`` days on (12 h of slack absorbs DST shifts).
    """
    offsets = pod.offsets
    if kind == "backup":
        return pod.window.next_slot(offsets.backup, now)
    if kind == "prune":
        return pod.window.next_slot(offsets.prune, now + timedelta(days=pod.prune_days) - HALF_DAY)
    if kind == "check":
        days = pod.check_days or DEFAULT_INTERVAL_DAYS
        return pod.window.next_slot(offsets.check, now + timedelta(days=days) - HALF_DAY)
    raise ValueError(f"unknown scheduled job kind {kind!r}")
