"""The answers to the polled reads (status, job, snapshot list), kept by the API process
until PostgreSQL says a row behind them changed.

A control panel polls the same few URLs every few seconds while nothing changes; each poll
otherwise costs a database round trip and a model built and serialized again. Rows of the
tables those reads come from notify ``podbackup_reads`` with the ids they concern (the pod's,
a job's own) when their transaction commits (migration 0003); ``ChangeListener`` holds one
connection LISTENing and drops the answers for those ids at once.

Never a stale answer because of the cache:

- answers are kept only while the listener is connected: before it has LISTENed, after its
  connection is lost and until it is back, every read goes to the database (and whatever
  was kept is dropped);
- an answer computed while a change of its id arrived is not kept (a ticket taken before
  the read must still be current when it is stored);
- ``ttl_seconds`` bounds how long one is kept even so (the 30-day growth figure depends on
  the clock).

Authentication and tenancy are not cached: the caller's principal is checked against the
owner kept beside each answer, on every hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass

import asyncpg
from fastapi import Response
from prometheus_client import Gauge
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit import fastread

log = logging.getLogger(__name__)

CHANNEL = "podbackup_reads"

_LIVE = Gauge(
    "podbackup_read_cache_live",
    "1 while this API process listens for changes and may answer polled reads from memory",
)
_ENTRIES = Gauge("podbackup_read_cache_entries", "Answers kept by this API process")
_HITS = Gauge("podbackup_read_cache_hits", "Polled reads answered from memory (since start)")
_MISSES = Gauge("podbackup_read_cache_misses", "Polled reads that went to the database")


@dataclass(frozen=True, slots=True)
class Ticket:
    epoch: int
    seq: int
    scope: str


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    owner: uuid.UUID  # the account that may read it (admins may read every one)
    admin_only: bool  # the platform plan's answers
    scope: str
    expires: float

    def visible_to(self, principal: object) -> bool:
        is_admin = bool(getattr(principal, "is_admin", False))
        owns = getattr(principal, "owns", None)
        if self.admin_only and not is_admin:
            return False
        return bool(owns(self.owner)) if callable(owns) else False


@dataclass(frozen=True, slots=True)
class Fresh:
    """An answer read from the database, and who may read it again from memory."""

    response: Response
    owner: uuid.UUID
    admin_only: bool = False


class ReadCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 20_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.live = False
        self.hits = 0
        self.misses = 0
        self._epoch = 0
        self._seq = 0
        self._floor = 0  # tickets older than this are refused (the change log was trimmed)
        self._changed: dict[str, int] = {}  # scope -> seq of its last change
        self._entries: OrderedDict[Hashable, Answer] = OrderedDict()
        self._by_scope: dict[str, set[Hashable]] = {}

    @property
    def enabled(self) -> bool:
        return self.live and self.ttl > 0

    def get(self, key: Hashable) -> Answer | None:
        if not self.enabled:
            self.misses += 1
            return None
        answer = self._entries.get(key)
        if answer is None:
            self.misses += 1
            return None
        if answer.expires <= time.monotonic():
            self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return answer

    async def serve(
        self,
        key: Hashable,
        scope: uuid.UUID,
        principal: object,
        read: Callable[[], Awaitable[Fresh]],
    ) -> Response:
        """The kept answer to ``key`` if the principal may see it, else ``read()`` (which
        checks visibility itself and raises NotFound), kept unless ``scope`` changed
        meanwhile. A kept answer the principal may not see is read again, never served."""
        hit = self.get(key)
        if hit is not None and hit.visible_to(principal):
            return Response(hit.body, media_type="application/json")
        ticket = self.ticket(scope)
        fresh = await read()
        self.put(key, ticket, fresh.response.body, owner=fresh.owner, admin_only=fresh.admin_only)
        return fresh.response

    def ticket(self, scope: uuid.UUID | str) -> Ticket | None:
        """Taken before reading the database; ``put`` keeps the answer only if no change
        of ``scope`` arrived in between (and the listener stayed connected)."""
        if not self.enabled:
            return None
        return Ticket(self._epoch, self._seq, str(scope))

    def put(
        self,
        key: Hashable,
        ticket: Ticket | None,
        body: bytes | memoryview,
        *,
        owner: uuid.UUID,
        admin_only: bool = False,
    ) -> bool:
        if ticket is None or not self.enabled or ticket.epoch != self._epoch:
            return False
        if ticket.seq < self._floor or self._changed.get(ticket.scope, -1) > ticket.seq:
            return False
        self._drop(key)
        self._entries[key] = Answer(
            bytes(body), owner, admin_only, ticket.scope, time.monotonic() + self.ttl
        )
        self._by_scope.setdefault(ticket.scope, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))
        return True

    def changed(self, scopes: Iterable[str]) -> None:
        """Rows of these ids changed (a notification): their answers go at once."""
        self._seq += 1
        for scope in scopes:
            self._changed[scope] = self._seq
            for key in self._by_scope.pop(scope, ()):
                self._entries.pop(key, None)
        if len(self._changed) > 4 * self.max_entries:
            # Only tickets taken since the last change matter; refuse older ones instead
            # of remembering every id that ever changed.
            self._changed.clear()
            self._floor = self._seq

    def reset(self, *, live: bool) -> None:
        """The listener connected (``live``) or lost its connection: start over."""
        self._epoch += 1
        self._entries.clear()
        self._by_scope.clear()
        self._changed.clear()
        self.live = live

    def _drop(self, key: Hashable) -> None:
        answer = self._entries.pop(key, None)
        if answer is not None:
            keys = self._by_scope.get(answer.scope)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_scope[answer.scope]

    def __len__(self) -> int:
        return len(self._entries)


class WritesMiddleware:
    """A change made through this process is seen by its next read at once: when a write
    request (POST, PUT, PATCH, DELETE) answers — its transaction has committed by then —
    the ids in its path are dropped here, without waiting for the notification."""

    def __init__(self, app: ASGIApp, cache: ReadCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._drop(scope)
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            self._drop(scope)

    def _drop(self, scope: Scope) -> None:
        ids = []
        for value in (scope.get("path_params") or {}).values():
            try:
                ids.append(str(uuid.UUID(str(value))))
            except ValueError:
                continue
        if ids:
            self.cache.changed(ids)


def export_metrics(cache: ReadCache) -> None:
    """Set when /metrics is scraped (nothing per request)."""
    _LIVE.set(1 if cache.enabled else 0)
    _ENTRIES.set(len(cache))
    _HITS.set(cache.hits)
    _MISSES.set(cache.misses)


def driver_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as a plain libpq/asyncpg DSN."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ChangeListener:
    """One connection LISTENing on ``podbackup_reads`` for the process. The cache is live only
    while a probe, sent every ``ping_seconds`` through the engine's pool the way every write
    commits, comes back on that connection: a listener that hears nothing (a pooler in
    transaction mode between us and PostgreSQL, a half-open socket) keeps nothing."""

    def __init__(
        self,
        database_url: str,
        cache: ReadCache,
        engine: AsyncEngine,
        *,
        ping_seconds: float = 5.0,
        retry_seconds: float = 2.0,
    ) -> None:
        self._dsn = driver_dsn(database_url)
        self.cache = cache
        self.engine = engine
        self.ping_seconds = ping_seconds
        self.retry_seconds = retry_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._probes: dict[str, asyncio.Future[None]] = {}
        self.connected = asyncio.Event()
        self.pid: int | None = None  # the listening backend (tests end it to cut the link)

    def start(self) -> None:
        if self.cache.ttl > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="read-cache-listener")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.cache.reset(live=False)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("read cache off: change listener: %s", type(exc).__name__)
            finally:
                self.cache.reset(live=False)
                self.connected.clear()
                self.pid = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.retry_seconds)

    def _notified(self, _c: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("probe:"):
            probe = self._probes.get(payload[6:])
            if probe is not None and not probe.done():
                probe.set_result(None)
            return
        self.cache.changed(payload.split())

    async def _probe(self) -> None:
        """A notification sent like a write's must arrive here; raises TimeoutError if not."""
        token = uuid.uuid4().hex
        arrived = asyncio.get_running_loop().create_future()
        self._probes[token] = arrived
        try:
            async with fastread.connection(self.engine) as pooled:
                await pooled.fetchval("SELECT pg_notify($1, $2)", CHANNEL, f"probe:{token}")
            await asyncio.wait_for(arrived, timeout=self.ping_seconds)
        finally:
            self._probes.pop(token, None)

    async def _session(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn, timeout=5)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, self._notified)
            self.pid = conn.get_server_pid()
            await self._probe()
            # From here on every commit is notified to us: answers may be kept.
            self.cache.reset(live=True)
            self.connected.set()
            while not self._stop.is_set() and not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=self.ping_seconds)
                if not lost.is_set():
                    await self._probe()
        finally:  # _run turns the cache off
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
