"""ReadCache on its own: tickets, visibility, expiry, bounds (no database)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from app.readcache.cache import ReadCache

OWNER = uuid.uuid4()


@dataclass
class Who:
    account_id: uuid.UUID | None
    is_admin: bool = False

    def owns(self, account_id: uuid.UUID) -> bool:
        return self.is_admin or account_id == self.account_id


def live(ttl: float = 60.0, **kw: int) -> ReadCache:
    cache = ReadCache(ttl, **kw)
    cache.reset(live=True)
    return cache


def test_kept_until_its_scope_changes() -> None:
    cache = live()
    assert cache.get("k") is None
    assert cache.put("k", cache.ticket("pod-1"), b"v1", owner=OWNER)
    hit = cache.get("k")
    assert hit is not None
    assert hit.body == b"v1"
    cache.changed(["job-9"])  # another id: kept
    assert cache.get("k") is not None
    cache.changed(["job-9", "pod-1"])
    assert cache.get("k") is None


def test_an_answer_read_while_its_scope_changed_is_not_kept() -> None:
    cache = live()
    ticket = cache.ticket("pod-1")  # the read starts...
    cache.changed(["pod-1"])  # ...a change commits while it runs...
    assert not cache.put("k", ticket, b"old", owner=OWNER)  # ...its answer may be old
    assert cache.get("k") is None
    later = cache.ticket("pod-1")
    assert cache.put("k", later, b"new", owner=OWNER)


def test_nothing_is_kept_while_not_listening_and_a_reset_forgets_everything() -> None:
    cache = ReadCache(60.0)
    assert cache.ticket("pod-1") is None
    assert not cache.put("k", cache.ticket("pod-1"), b"v", owner=OWNER)
    cache.reset(live=True)
    ticket = cache.ticket("pod-1")
    assert cache.put("k", ticket, b"v", owner=OWNER)
    cache.reset(live=False)  # the listener's connection is gone
    assert cache.get("k") is None
    cache.reset(live=True)
    assert cache.get("k") is None
    assert not cache.put("k", ticket, b"v", owner=OWNER)  # a ticket from before the gap


def test_ttl_zero_keeps_nothing() -> None:
    cache = live(ttl=0)
    assert cache.ticket("pod-1") is None
    assert cache.get("k") is None


def test_expiry() -> None:
    cache = live(ttl=0.05)
    assert cache.put("k", cache.ticket("pod-1"), b"v", owner=OWNER)
    time.sleep(0.1)
    assert cache.get("k") is None


def test_visibility_is_checked_on_every_hit() -> None:
    cache = live()
    cache.put("mine", cache.ticket("p"), b"v", owner=OWNER)
    cache.put("platform", cache.ticket("p"), b"v", owner=OWNER, admin_only=True)
    mine, platform = cache.get("mine"), cache.get("platform")
    assert mine is not None
    assert platform is not None
    assert mine.visible_to(Who(OWNER))
    assert not mine.visible_to(Who(uuid.uuid4()))
    assert mine.visible_to(Who(None, is_admin=True))
    assert not platform.visible_to(Who(OWNER))
    assert platform.visible_to(Who(None, is_admin=True))


def test_bounded_size_and_change_log() -> None:
    cache = live(max_entries=10)
    for i in range(25):
        assert cache.put(f"k{i}", cache.ticket(f"pod-{i}"), b"v", owner=OWNER)
    assert len(cache) == 10
    assert cache.get("k0") is None
    assert cache.get("k24") is not None
    old = cache.ticket("pod-x")
    cache.changed(f"other-{i}" for i in range(100))  # more than 4 x max_entries ids
    cache.changed(["pod-y"])
    assert not cache.put("late", old, b"v", owner=OWNER)  # log trimmed: refused, not risked
    assert cache.put("fresh", cache.ticket("pod-x"), b"v", owner=OWNER)
