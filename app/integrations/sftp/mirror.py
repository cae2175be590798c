"""Incremental mirror of a pod's folder over SFTP into the worker's cache.

A regular file is downloaded when its size or mtime differs from the local copy,
into a temporary name in the same folder, then renamed into place (no fsync: the
cache only makes backups faster, a lost file is simply downloaded again). Folders,
modes, mtimes and symlinks (their text, never followed) follow the server; what
vanished remotely is deleted locally.

Files the server refuses to open are listed in ``MirrorStats.unreadable`` and their
old local copy is removed: a snapshot must never carry stale content for a file
that could not be read this time (the job reports it as ``partial`` instead). Only
files that must be downloaded are opened; an unchanged file (same size and mtime)
keeps the copy read earlier, which is its current content by the same rule that makes
the mirror incremental. Folders the server will not list are reported the same way
and emptied locally; symlinks whose text cannot be read (or that the server will not
show) are reported the same way, counted in ``symlinks_skipped`` and removed.

The server is untrusted: a listing that names an entry twice, a name that is not one
path component, or a tree deeper than ``tree.MAX_DEPTH`` fails as ``hostile_listing``
(tree.py), and every local write, rename and delete walks its parents without
following links (local.py; ``unsafe_entry`` otherwise).

Local modes: folders get at least ``u+rwx`` and files ``u+r`` (see local.py), so the
worker can always update the cache and restic can always read it. PODBACKUP_CACHE_DIR
itself is 0700 (app/kit/cachedir.py): the mirror reproduces the pod's modes below it.

Small files (one read's worth) are many and cheap: up to ``small_files`` are open at
once, each read and closed in one exchange, and stored by one writer thread in batches
(store.py); on the wire, the requests written in one turn of the event loop leave in
one packet write (wire.py).

Cancel: when ``cancel`` is set the transfer stops within a moment, temporary files
are removed and ``SftpError("canceled")`` is raised (not ``CancelledError``, which
stays reserved for the caller's own task being cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from app.integrations.sftp import local
from app.integrations.sftp.connection import Session, open_session
from app.integrations.sftp.endpoint import SftpEndpoint
from app.integrations.sftp.errors import SftpError, classify, is_disk_full
from app.integrations.sftp.models import MirrorProgress, MirrorStats
from app.integrations.sftp.store import BatchWriter, StoreFailed
from app.integrations.sftp.transfer import (
    Throttle,
    WriteFn,
    block_size_for,
    cancellable,
    pull_file,
    read_whole,
    run_pools,
)
from app.integrations.sftp.tree import DIR, FILE, LINK, Entry, scan, shown
from app.kit.netpolicy import Policy

T = TypeVar("T")


async def mirror(
    endpoint: SftpEndpoint,
    policy: Policy,
    dest: Path,
    *,
    on_progress: Callable[[MirrorProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
    parallel_files: int = 8,
    block_size: int = 256 * 1024,
    max_requests: int = 64,
    small_files: int = 32,
    write: WriteFn = os.pwrite,
) -> MirrorStats:
    """Make ``dest`` an exact copy of the endpoint's folder, downloading only changes.

    Up to ``parallel_files`` files larger than one read are copied at once and, beside
    them, up to ``small_files`` files that fit in one read (each: open, then read and
    close sent together); at most ``max_requests`` reads of ``block_size`` are on the
    wire in total (shared, not per file: OpenSSH's sshd slows down when hundreds of
    256 KiB reads queue up).

    ``write`` is the pwrite-shaped function used for file data (fault tests inject
    ENOSPC through it). Raises SftpError (codes in errors.py), or
    OutboundAddressRefused when the host is not allowed.
    """
    job = _Mirror(
        endpoint,
        policy,
        Path(dest),
        on_progress,
        block_size,
        max_requests,
        write,
        parallel_files=max(1, parallel_files),
        small_files=max(1, small_files),
    )
    return await cancellable(job.run(), cancel)


class _Mirror:
    def __init__(
        self,
        endpoint: SftpEndpoint,
        policy: Policy,
        dest: Path,
        on_progress: Callable[[MirrorProgress], None] | None,
        block_size: int,
        max_requests: int,
        write: WriteFn,
        parallel_files: int,
        small_files: int,
    ) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.dest = dest
        self.progress = Throttle(on_progress)
        self.parallel_files = parallel_files
        self.small_files = small_files
        self.block_size = block_size
        self.max_requests = max_requests
        self.write = write
        self.stats = MirrorStats()
        self.temps: set[tuple[bytes, bytes]] = set()  # (rel, temporary name beside it)
        self.slots = asyncio.Semaphore(max(1, max_requests))
        self.unreadable: dict[bytes, str] = {}
        self.todo_files = 0
        self.todo_bytes = 0
        self.done_files = 0

    async def run(self) -> MirrorStats:
        try:
            await asyncio.to_thread(local.prepare_dest, self.dest)
            async with open_session(self.endpoint, self.policy) as session:
                self.stats.host_key = session.host_key
                await self._run(session)
        except SftpError:
            raise
        except local.UnsafeEntry as exc:
            raise unsafe(exc) from None
        except (OSError, asyncssh.Error) as exc:
            raise classify(exc, "mirroring the pod's files") from None
        finally:
            for rel, tmp in list(self.temps):
                local.drop_temp(self.dest, rel, tmp)
            self.temps.clear()
        self.stats.unreadable = [
            {"path": shown(rel), "error": why} for rel, why in sorted(self.unreadable.items())
        ]
        return self.stats

    async def _run(self, session: Session) -> None:
        tree = await scan(session, on_entry=self._found)
        self.unreadable.update(tree.unreadable)
        self.stats.symlinks_skipped = len(tree.unread_links)
        todo = await asyncio.to_thread(local.reconcile, self.dest, tree, self.stats)
        self.todo_files = len(todo)
        self.todo_bytes = sum(e.size for e in todo)
        self._report(force=True)
        block = block_size_for(
            session.sftp.limits.max_read_len, self.block_size, unknown=self.block_size
        )
        # Small files keep the listing's order (folder by folder: the writer's folder
        # descriptors stay warm); large ones go biggest first, for an even finish.
        small: asyncio.Queue[Entry] = asyncio.Queue()
        large: asyncio.Queue[Entry] = asyncio.Queue()
        for entry in (e for e in todo if e.size <= block):
            small.put_nowait(entry)
        for entry in sorted((e for e in todo if e.size > block), key=lambda e: -e.size):
            large.put_nowait(entry)
        writer = BatchWriter(self.dest, self.write, self._stored)
        try:
            await run_pools(
                (self.parallel_files, large, lambda e: self._download(session, e, block)),
                (self.small_files, small, lambda e: self._download_small(session, e, writer)),
            )
            await writer.drain()
        except StoreFailed as exc:
            if isinstance(exc.error, local.UnsafeEntry):
                raise unsafe(exc.error) from None
            doing = "writing" if is_disk_full(exc.error) else "storing"
            raise classify(exc.error, f"{doing} {shown(exc.rel)}") from None
        finally:
            await writer.close()
        self._report(force=True)
        await asyncio.to_thread(local.finish, self.dest, tree)

    def _found(self, entry: Entry) -> None:
        if entry.kind == FILE:
            self.stats.files_total += 1
            self.stats.bytes_total += entry.size
        elif entry.kind == DIR:
            self.stats.dirs_total += 1
        elif entry.kind == LINK:
            self.stats.symlinks_total += 1
        self.progress(MirrorProgress(self.stats.files_total, 0, self.stats.bytes_total, 0, "scan"))

    def _report(self, *, force: bool = False) -> None:
        self.progress(
            MirrorProgress(
                self.todo_files,
                self.done_files,
                self.todo_bytes,
                self.stats.bytes_downloaded,
                "download",
            ),
            force=force,
        )

    def _on_bytes(self, n: int) -> None:
        self.stats.bytes_downloaded += n
        self._report()

    async def _open(self, session: Session, entry: Entry) -> asyncssh.SFTPClientFile | None:
        """The remote file opened for reading, or None when it cannot be copied (recorded
        as unreadable, or gone: its local copy is removed either way)."""
        try:
            return await session.sftp.open(session.path(entry.rel), "rb", block_size=0)
        except asyncssh.SFTPPermissionDenied:
            self.unreadable[entry.rel] = "permission denied"
            # never keep stale content
            await _settled(local.remove, self.dest, entry.rel)
        except asyncssh.SFTPNoSuchFile:  # vanished since the scan
            self.stats.files_deleted += await _settled(local.remove, self.dest, entry.rel)
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, f"opening {shown(entry.rel)}") from None
        return None

    def _stored(self, entry: Entry) -> None:
        self.done_files += 1
        self.stats.files_downloaded += 1
        self._on_bytes(entry.size)

    async def _download_small(self, session: Session, entry: Entry, writer: BatchWriter) -> None:
        """A file that fits in one read: open; then the read and the close go out
        together (the server answers requests on a handle in order), and ``writer``
        stores the bytes (counted as downloaded once stored). An answer shorter than
        the listed size (the file shrank, or a server that answers short) takes the
        general path."""
        f = await self._open(session, entry)
        if f is None:
            return
        try:
            async with self.slots:
                if entry.size:
                    read = asyncio.ensure_future(f.read(entry.size, 0))
                    await asyncio.sleep(0)  # the read is sent before the close
                else:
                    read = None
                closing = asyncio.ensure_future(f.close())
                try:
                    data = await read if read is not None else b""
                finally:
                    await _settled_close(closing, read)
            assert isinstance(data, bytes)
            if len(data) < entry.size:
                await self._download(session, entry, entry.size)
                return
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, f"downloading {shown(entry.rel)}") from None
        await writer.add(entry, data[: entry.size])

    async def _download(self, session: Session, entry: Entry, block: int) -> None:
        f = await self._open(session, entry)
        if f is None:
            return
        try:
            if entry.size <= block:
                try:
                    data = await read_whole(f, entry.size, self.slots)
                finally:
                    await _close(f)
                await _settled(
                    local.store_file,
                    self.dest,
                    entry.rel,
                    data,
                    entry.mode,
                    entry.mtime,
                    self.write,
                )
                self._on_bytes(len(data))
            else:
                await self._fetch(f, entry, block)
        except local.UnsafeEntry as exc:
            raise unsafe(exc) from None
        except (asyncssh.Error, OSError) as exc:
            doing = "writing" if is_disk_full(exc) else "downloading"
            raise classify(exc, f"{doing} {shown(entry.rel)}") from None
        self.done_files += 1
        self.stats.files_downloaded += 1

    async def _fetch(self, f: asyncssh.SFTPClientFile, entry: Entry, block: int) -> None:
        # A few syscalls each, in the loop as before: a thread could not be canceled
        # without leaking the descriptor it opened.
        try:
            fd, tmp = local.create_temp(self.dest, entry.rel)
        except BaseException:
            await _close(f)
            raise
        self.temps.add((entry.rel, tmp))
        try:
            await self._pull(f, entry, fd, block)
            local.commit_temp(self.dest, entry.rel, tmp)
        finally:
            # After a failure (or a cancel) the temporary goes; after the rename there is
            # nothing left to find. Never leaves it behind, even on ENOSPC.
            local.drop_temp(self.dest, entry.rel, tmp)
            self.temps.discard((entry.rel, tmp))

    async def _pull(self, f: asyncssh.SFTPClientFile, entry: Entry, fd: int, block: int) -> None:
        try:
            try:
                await pull_file(
                    f,
                    fd,
                    entry.size,
                    block_size=block,
                    max_requests=self.max_requests,
                    write=self.write,
                    on_bytes=self._on_bytes,
                    slots=self.slots,
                )
                os.fchmod(fd, local.file_mode(entry.mode))
                ns = entry.mtime * 1_000_000_000
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)
        finally:
            await _close(f)


async def _settled(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a thread; when canceled, return only once the thread is done (a
    file operation takes a moment and cleans up after itself), so a canceled or failed
    mirror never leaves a temporary file being written behind it."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await work
        raise


def unsafe(exc: local.UnsafeEntry) -> SftpError:
    """A cache path that would have been reached through a link: stop, naming the entry."""
    return SftpError(
        "unsafe_entry",
        f"refused to write {shown(exc.rel)!r} in the worker's cache: it {exc.why}; "
        "nothing was written through it",
    )


async def _settled_close(closing: asyncio.Future[None], read: asyncio.Future[Any] | None) -> None:
    """Wait for a close sent behind a read (its outcome does not matter: the data was
    received, or its error is the one raised)."""
    if read is not None and not read.done():
        read.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, timeout=5)


async def _close(f: asyncssh.SFTPClientFile) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(f.close(), timeout=5)
