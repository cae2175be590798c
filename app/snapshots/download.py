"""Snapshot downloads: `restic dump` started and seen before the status line is sent,
a fair share of the process's download slots per account, and a body that gives its
slot back when the client stops reading.

The status line cannot be taken back: a repository restic cannot open (a wrong password,
a bucket emptied, a pack gone, the storage down) must fail before it, as an error with a
hint, not as a 200 whose body ends after 0 bytes. So the download answers only once
restic has written its first bytes (or ended cleanly). A failure after that can only cut
the connection (the client sees an incomplete transfer, never a short file or tar that
looks whole): it is logged on one line, without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.errors import AppError, Conflict, ServiceUnavailable, TooManyRequests
from app.integrations.restic import Repository, Restic, ResticError

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
# How much the download reads ahead before it answers: past restic's opening of the
# repository and its first data blob (a tar's first headers alone prove nothing).
PREFETCH_BYTES = 64 * 1024
PREFETCH_SECONDS = 1.0


class RepositoryUnreadable(Conflict):
    message = "The repository could not be read"


class BadGateway(AppError):
    status_code = 502
    message = "The storage answered with an error"


def download_error(exc: ResticError) -> AppError:
    """A restic failure before the first byte, as the API's error (its code in the detail)."""
    detail = f"restic could not read the snapshot ({exc.code}): {exc.message}"
    if exc.code in ("storage_unreachable", "timeout", "repository_locked"):
        return ServiceUnavailable(detail, hint=exc.hint, headers={"Retry-After": "30"})
    if exc.code in (
        "wrong_password",
        "repository_not_found",
        "repository_damaged",
        "access_denied",
        "target_unusable",
        "address_refused",
    ):
        return RepositoryUnreadable(detail, hint=exc.hint)
    return BadGateway(detail, hint=exc.hint or "retry; if it persists, run a check of the pod")


class DownloadSlots:
    """Downloads this process streams at once (``total``), at most ``per_account`` of them
    for one account, so one tenant cannot hold every slot. Taking a slot never waits:
    over a limit the request answers 429."""

    def __init__(self, total: int, per_account: int) -> None:
        self.total = total
        self.per_account = max(1, min(per_account, total))
        self._held: dict[uuid.UUID | None, int] = {}

    @property
    def in_use(self) -> int:
        return sum(self._held.values())

    def take(self, account: uuid.UUID | None) -> Callable[[], None]:
        """A slot for ``account``; returns its release (idempotent)."""
        if self.in_use >= self.total:
            raise TooManyRequests(
                "too many downloads are running",
                hint="retry in a few seconds",
                headers={"Retry-After": "5"},
            )
        if self._held.get(account, 0) >= self.per_account:
            raise TooManyRequests(
                f"this account already runs {self.per_account} download(s) at once",
                hint="let a running download finish, then retry",
                headers={"Retry-After": "5"},
            )
        self._held[account] = self._held.get(account, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._held.get(account, 0) - 1
            if left > 0:
                self._held[account] = left
            else:
                self._held.pop(account, None)

        return release


class Dump:
    """A `restic dump` whose start has been seen: ``head`` holds what it wrote first."""

    def __init__(
        self,
        head: bytes,
        stack: contextlib.AsyncExitStack | None = None,
        out: asyncio.StreamReader | None = None,
    ) -> None:
        self.head = head
        self._stack = stack
        self._out = out

    @classmethod
    async def start(
        cls, restic: Restic, repo: Repository, snapshot: str, path: str, archive: str | None
    ) -> Dump:
        """Start restic and read ahead; raises ResticError when it fails before its output
        has got going (restic's exit code decides: a stream that ended is checked)."""
        stack = contextlib.AsyncExitStack()
        try:
            out = await stack.enter_async_context(
                restic.dump_stream(repo, snapshot, path, archive=archive)
            )
            head = await out.read(CHUNK)
            deadline = asyncio.get_running_loop().time() + PREFETCH_SECONDS
            while head and len(head) < PREFETCH_BYTES:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    more = await asyncio.wait_for(out.read(CHUNK), timeout=left)
                except TimeoutError:
                    break
                if not more:
                    break
                head += more
            if out.at_eof():
                await stack.aclose()  # restic's exit: raises when it failed
                return cls(head)
        except BaseException:
            await stack.aclose()
            raise
        return cls(head, stack, out)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        if self.head:
            yield self.head
        if self._out is None:
            return
        while chunk := await self._out.read(CHUNK):
            yield chunk
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()  # raises ResticError when restic failed midway

    async def aclose(self) -> None:
        """Stop restic (when still running) and reap it: the stream interrupts it while
        reading its pipes to their end (restic 0.17+ blocked on a full pipe never
        sees SIGINT, and an unread pipe would keep its transport open past the loop)."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        with contextlib.suppress(Exception):
            await stack.aclose()


class DumpResponse(StreamingResponse):
    """Streams a started Dump and gives the download slot back however the response ends
    — the one place that does: a generator's own ``finally`` never runs when the client
    is gone before the body started. A client that has not taken a chunk for
    ``idle_seconds`` (it stopped reading; the socket's buffers are full) is cut off, and
    so is a restic that fails midway: one log line each, and the connection closes
    without the end of the body, so the client knows the transfer is incomplete."""

    def __init__(
        self,
        dump: Dump,
        *,
        release: Callable[[], None],
        idle_seconds: float,
        what: str,
        **kw: Any,
    ) -> None:
        self._dump = dump
        self._chunks = dump.chunks()
        super().__init__(self._chunks, **kw)
        self._release = release
        self._idle = idle_seconds
        self._what = what

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self._chunks:
                try:
                    async with asyncio.timeout(self._idle):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except TimeoutError:
                    log.info(
                        "download of %s: the client took nothing for %.0fs; cut off",
                        self._what,
                        self._idle,
                    )
                    return
        except ResticError as exc:
            log.warning(
                "download of %s failed midway (%s): %s; connection cut",
                self._what,
                exc.code,
                exc.message,
            )
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                with contextlib.suppress(Exception):
                    await self._chunks.aclose()
                await self._dump.aclose()
            finally:
                self._release()
