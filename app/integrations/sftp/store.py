"""Storing downloaded small files in the cache, in batches, off the event loop.

Creating a file is the slow part of a small file on a busy disk (a millisecond and more
here under load), so it must not run in the loop; but a thread hand-off per file costs
a wake-up of the loop each, and the thread's system calls keep taking the GIL from the
loop. So files wait in a list while one thread stores the previous batch: one hand-off
per batch, however many files it holds.

Each file is written under a temporary name and renamed into place (``local.SmallFiles``);
a canceled or failed mirror waits for the batch being written to stop after its current
file, so no temporary is left behind and no partial file ever carries the real name.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from app.integrations.sftp import local
from app.integrations.sftp.transfer import WriteFn
from app.integrations.sftp.tree import Entry

# Bytes held in memory waiting for the writer before downloads wait for it.
PENDING_LIMIT = 32 * 1024 * 1024


class StoreFailed(Exception):
    """Storing ``rel`` failed with ``error`` (an OSError or local.UnsafeEntry)."""

    def __init__(self, rel: bytes, error: Exception) -> None:
        super().__init__(str(error))
        self.rel = rel
        self.error = error


class BatchWriter:
    """``await add(entry, data)`` queues a whole small file; ``await drain()`` returns
    once all are stored (raising the first failure as ``StoreFailed``); ``close()``
    always, last. ``on_stored(entry)`` runs in the loop for each file stored."""

    def __init__(self, dest: Path, write: WriteFn, on_stored: Callable[[Entry], None]) -> None:
        self.files = local.SmallFiles(dest, write)
        self.on_stored = on_stored
        self.pending: list[tuple[Entry, bytes]] = []
        self.pending_bytes = 0
        self.task: asyncio.Task[None] | None = None
        self.room = asyncio.Event()
        self.stop = threading.Event()

    def _check(self) -> None:
        if self.task is not None and self.task.done() and not self.task.cancelled():
            error = self.task.exception()
            if error is not None:
                raise error

    async def add(self, entry: Entry, data: bytes) -> None:
        while self.pending_bytes >= PENDING_LIMIT and self.task is not None:
            if self.task.done():
                break
            self.room.clear()
            await self.room.wait()
        self._check()
        self.pending.append((entry, data))
        self.pending_bytes += len(data)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._flush())
            self.task.add_done_callback(lambda _: self.room.set())

    async def drain(self) -> None:
        while self.task is not None and not self.task.done():
            await asyncio.shield(self.task)
        self._check()
        assert not self.pending

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending, self.pending_bytes = self.pending, [], 0
            self.room.set()
            work = asyncio.ensure_future(asyncio.to_thread(self._store, batch))
            try:
                stored = await asyncio.shield(work)
            except asyncio.CancelledError:
                self.stop.set()  # the thread ends after its current file
                with contextlib.suppress(BaseException):
                    await work
                raise
            for entry, _ in batch[:stored]:
                self.on_stored(entry)

    def _store(self, batch: list[tuple[Entry, bytes]]) -> int:
        """In the thread: store the files in order; returns how many were stored."""
        for done, (entry, data) in enumerate(batch):
            if self.stop.is_set():
                return done
            try:
                self.files.store(entry.rel, data, entry.mode, entry.mtime)
            except (OSError, local.UnsafeEntry) as exc:
                raise StoreFailed(entry.rel, exc) from None
        return len(batch)

    async def close(self) -> None:
        """Stop writing (after the current file) and release the folder descriptors."""
        self.stop.set()
        self.pending.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        self.files.close()
