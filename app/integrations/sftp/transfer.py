"""Concurrency plumbing shared by mirror and upload: worker pools, cancel, pipelined reads."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import asyncssh

from app.integrations.sftp.errors import SftpError
from app.integrations.sftp.models import MirrorProgress

T = TypeVar("T")

# pwrite-shaped: (fd, data, offset) -> bytes written. Injectable so fault tests can
# make the cache disk "full" without mounting a small filesystem.
WriteFn = Callable[[int, bytes, int], int]
ProgressFn = Callable[[MirrorProgress], None]


_UNADVERTISED = 16 * 1024  # asyncssh's limit when the server sends no limits@openssh.com


def block_size_for(advertised: int, wanted: int, *, unknown: int) -> int:
    """``wanted`` capped by the server's advertised limit; ``unknown`` caps it when the
    server advertised nothing (writes over a server's maximum kill the session, while
    oversized reads are merely answered short)."""
    if advertised > _UNADVERTISED:
        return max(1, min(wanted, advertised))
    return max(1, min(wanted, unknown))


async def run_pool(n: int, queue: asyncio.Queue[T], work: Callable[[T], Awaitable[None]]) -> None:
    """Run ``work`` on queue items with ``n`` workers until the queue is drained.

    ``work`` may put more items (a directory walk). The first failure cancels the
    other workers and is raised as is.
    """
    await run_pools((n, queue, work))


async def run_pools(
    *pools: tuple[int, asyncio.Queue[Any], Callable[[Any], Awaitable[None]]],
) -> None:
    """``run_pool`` for several queues at once, each with its own workers; returns when
    every queue is drained. The first failure in any pool cancels all the workers and
    is raised as is."""

    def worker(queue: asyncio.Queue[Any], work: Callable[[Any], Awaitable[None]]) -> Any:
        async def loop() -> None:
            while True:
                item = await queue.get()
                try:
                    await work(item)
                finally:
                    queue.task_done()

        return loop()

    workers = [
        asyncio.create_task(worker(queue, work))
        for n, queue, work in pools
        for _ in range(max(1, n))
    ]
    drained = asyncio.gather(*(queue.join() for _, queue, _ in pools))
    try:
        done, _ = await asyncio.wait([drained, *workers], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not drained:
                task.result()  # a worker only ends by failing: raise its error
    finally:
        for task in [drained, *workers]:
            task.cancel()
        await asyncio.gather(drained, *workers, return_exceptions=True)


async def cancellable(body: Coroutine[Any, Any, T], cancel: asyncio.Event | None) -> T:
    """Run ``body``; when ``cancel`` is set first, cancel it (its ``finally`` blocks clean
    up) and raise ``SftpError("canceled")``."""
    task = asyncio.ensure_future(body)
    if cancel is None:
        return await task
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # our caller was cancelled: never leave the body running
        task.cancel()
        waiter.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
        raise
    waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise SftpError("canceled", "the transfer was canceled")


class Throttle:
    """Calls ``fn`` at most every ``interval`` seconds (plus forced final calls)."""

    def __init__(self, fn: ProgressFn | None, interval: float = 0.25) -> None:
        self.fn = fn
        self.interval = interval
        self._last = 0.0

    def __call__(self, progress: MirrorProgress, *, force: bool = False) -> None:
        if self.fn is None:
            return
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self.fn(progress)


def write_all(write: WriteFn, fd: int, data: bytes, offset: int) -> None:
    while data:
        n = write(fd, data, offset)
        if n <= 0:
            raise OSError(errno.EIO, "the cache disk accepted no bytes")
        data = data[n:]  # a short write is rare (almost full disk): copy only then
        offset += n


async def _read_at(
    f: asyncssh.SFTPClientFile, offset: int, size: int, slots: asyncio.Semaphore | None
) -> tuple[int, int, bytes]:
    async with slots or contextlib.nullcontext():
        data = await f.read(size, offset)
    assert isinstance(data, bytes)
    return offset, size, data


async def read_whole(
    f: asyncssh.SFTPClientFile, size: int, slots: asyncio.Semaphore | None = None
) -> bytes:
    """The first ``size`` bytes of a small file (one request unless the server answers
    short); fewer when it shrank meanwhile."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        _, _, data = await _read_at(f, got, size - got, slots)
        if not data:
            break
        data = data[: size - got]  # never more than asked, whatever the server sends
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


async def pull_file(
    f: asyncssh.SFTPClientFile,
    fd: int,
    size: int,
    *,
    block_size: int,
    max_requests: int,
    write: WriteFn = os.pwrite,
    on_bytes: Callable[[int], None] | None = None,
    slots: asyncio.Semaphore | None = None,
) -> int:
    """Copy the first ``size`` bytes of remote ``f`` into local ``fd`` with up to
    ``max_requests`` reads of ``block_size`` in flight. ``f`` must be opened with
    ``block_size=0`` so each read is one request. ``slots``, shared by the files
    copied at once, caps the requests on the wire in total. Returns the bytes written
    (fewer than ``size`` when the file shrank meanwhile). Short reads are re-requested.
    """
    pending: set[asyncio.Task[tuple[int, int, bytes]]] = set()
    next_offset = 0
    end = size
    written = 0

    def start(offset: int, length: int) -> None:
        pending.add(asyncio.ensure_future(_read_at(f, offset, length, slots)))

    def fill() -> None:
        nonlocal next_offset
        while next_offset < end and len(pending) < max_requests:
            length = min(block_size, end - next_offset)
            start(next_offset, length)
            next_offset += length

    try:
        fill()
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                pending.discard(task)
                offset, length, data = task.result()
                if data:
                    write_all(write, fd, data, offset)
                    written += len(data)
                    if on_bytes is not None:
                        on_bytes(len(data))
                if len(data) < length:
                    if data:
                        start(offset + len(data), length - len(data))
                    else:  # end of file: it shrank since the scan
                        end = min(end, offset)
            fill()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return written
