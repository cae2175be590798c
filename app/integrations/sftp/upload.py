"""Push a restored tree back into a pod over SFTP, sending only what differs.

A file is uploaded when the remote copy is missing or differs in size or mtime; one
that matches in both is read back and compared byte by byte (SFTP servers offer no
checksum asyncssh can ask for), and uploaded when its bytes differ. An upload goes
into a temporary name in the same remote folder, is read back and compared, gets its
mode and mtime, then is renamed over the old one (``posix-rename@openssh.com`` where
the server has it), and the renamed file's size, mode and mtime are checked.
The scratch tree is read through folder descriptors opened without following links
(``safefs``), so nothing outside it is read whatever the snapshot holds. Modes and mtimes follow the
local tree; symlinks are recreated with their text. ``delete_extra`` ("mirror" mode)
also removes remote entries the local tree lacks, only inside the restored paths.
Every remote path is the endpoint root joined with names the server listed or the
local tree holds (never ``..``), so nothing outside the root is touched.

Cancel as in ``mirror``: ``SftpError("canceled")``; temporary remote files are
removed when the connection still allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncssh

from app.integrations import safefs
from app.integrations.sftp import local
from app.integrations.sftp.connection import Session, open_session
from app.integrations.sftp.endpoint import SftpEndpoint
from app.integrations.sftp.errors import SftpError, classify
from app.integrations.sftp.models import MirrorProgress, UploadStats
from app.integrations.sftp.transfer import (
    Throttle,
    block_size_for,
    cancellable,
    pull_file,
    run_pool,
)
from app.integrations.sftp.tree import DIR, FILE, LINK, Entry, RemoteTree, scan, shown
from app.kit.netpolicy import Policy


def _starts(subpaths: Sequence[str] | None) -> list[bytes]:
    if not subpaths:
        return [b""]
    starts = []
    for raw in subpaths:
        parts = [p for p in raw.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise SftpError("failed", f"the restore path '{raw}' may not contain '..'")
        starts.append(os.fsencode("/".join(parts)))
    return starts


def _inside(rel: bytes, starts: list[bytes]) -> bool:
    return any(not s or rel == s or rel.startswith(s + b"/") for s in starts)


async def upload(
    endpoint: SftpEndpoint,
    policy: Policy,
    src: Path,
    *,
    subpaths: Sequence[str] | None = None,
    delete_extra: bool = False,
    on_progress: Callable[[MirrorProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
    parallel_files: int = 4,
    block_size: int = 256 * 1024,
    max_requests: int = 64,
) -> UploadStats:
    """Make the endpoint's folder match ``src`` (restricted to ``subpaths``, relative
    to both roots). Raises SftpError or OutboundAddressRefused."""
    job = _Upload(Path(src), _starts(subpaths), delete_extra, on_progress)
    job.parallel_files, job.block_size, job.max_requests = parallel_files, block_size, max_requests

    async def body() -> UploadStats:
        try:
            async with open_session(endpoint, policy, gather_writes=False) as session:
                job.stats.host_key = session.host_key
                await job.run(session)
        except SftpError:
            raise
        except (OSError, asyncssh.Error) as exc:
            raise classify(exc, "uploading files into the pod") from None
        return job.stats

    return await cancellable(body(), cancel)


class _Upload:
    parallel_files = 4
    block_size = 256 * 1024
    max_requests = 64

    def __init__(
        self,
        src: Path,
        starts: list[bytes],
        delete_extra: bool,
        on_progress: Callable[[MirrorProgress], None] | None,
    ) -> None:
        self.src = src
        self.starts = starts
        self.delete_extra = delete_extra
        self.progress = Throttle(on_progress)
        self.stats = UploadStats()
        self.temps: set[bytes] = set()
        self.todo_files = 0
        self.todo_bytes = 0
        self.done_bytes = 0
        self.created: set[bytes] = set()
        self.no_lsetstat = False
        self.slots = asyncio.Semaphore(self.max_requests)
        self.src_fd = -1

    async def run(self, session: Session) -> None:
        self.slots = asyncio.Semaphore(max(1, self.max_requests))
        mine = await asyncio.to_thread(local.scan_local, self.src, self.starts)
        theirs = await scan(session, starts=self.starts)
        self.stats.files_total = sum(
            1 for e in mine.values() if e.kind == FILE and _inside(e.rel, self.starts)
        )
        self.src_fd = safefs.open_folder(self.src, None, create=False)
        try:
            await self._apply(session, mine, theirs)
        finally:
            os.close(self.src_fd)
            for tmp in list(self.temps):  # best effort: the connection may be gone
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.sftp.remove(session.path(tmp)), timeout=2)

    async def _apply(self, session: Session, mine: dict[bytes, Entry], theirs: RemoteTree) -> None:
        remote = theirs.entries
        # 1. remove what is in the way (another kind) or extra ("mirror" mode)
        doomed = []
        for rel, entry in remote.items():
            if not rel or not _inside(rel, self.starts):
                continue
            wanted = mine.get(rel)
            clash = wanted is not None and (
                wanted.kind != entry.kind or (entry.kind == LINK and wanted.target != entry.target)
            )
            if clash or (wanted is None and self.delete_extra):
                doomed.append(rel)
        for rel in doomed:
            if rel in remote:  # not already gone with a doomed parent
                await self._remove_tree(session, theirs, rel)
        # 2. folders and links, parents first; collect the files to send, and those that
        # look unchanged (size and mtime) to compare by content
        todo: list[Entry] = []
        alike: list[tuple[Entry, Entry]] = []
        for rel, entry in mine.items():
            have = remote.get(rel)
            if not rel or (have is not None and entry.kind == DIR):
                continue
            path = session.path(rel)
            if entry.kind == DIR:
                await session.sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=0o700))
                self.created.add(rel)
            elif entry.kind == LINK:
                assert entry.target is not None
                if have is None:
                    await session.sftp.symlink(entry.target, path)
                if have is None or have.mtime != entry.mtime:
                    await self._link_times(session, path, entry.mtime)
            elif have is None or have.size != entry.size or have.mtime != entry.mtime:
                todo.append(entry)
            else:
                alike.append((entry, have))
        # 3. same size and mtime: the bytes decide
        await self._compare_all(session, alike, todo)
        # 4. file contents
        self.todo_files = len(todo)
        self.todo_bytes = sum(e.size for e in todo)
        queue: asyncio.Queue[Entry] = asyncio.Queue()
        for entry in sorted(todo, key=lambda e: e.size, reverse=True):
            queue.put_nowait(entry)
        await run_pool(self.parallel_files, queue, lambda e: self._send(session, e))
        self._report(force=True)
        # 5. folder modes and times, children first (writing into a folder changes it);
        # parents of a partial restore are left alone unless this run created them
        for rel, entry in reversed(mine.items()):
            if entry.kind == DIR and (rel in self.created or _inside(rel, self.starts)):
                attrs = asyncssh.SFTPAttrs(
                    permissions=entry.mode, atime=entry.mtime, mtime=entry.mtime
                )
                await session.sftp.setstat(session.path(rel), attrs)

    async def _link_times(self, session: Session, path: bytes, mtime: int) -> None:
        """A link's own mtime needs lsetstat@openssh.com; plain SFTP v3 setstat would
        change the link's target instead, so without the extension it is left alone."""
        if self.no_lsetstat:
            return
        attrs = asyncssh.SFTPAttrs(atime=mtime, mtime=mtime)
        try:
            await session.sftp.setstat(path, attrs, follow_symlinks=False)
        except asyncssh.SFTPOpUnsupported:
            self.no_lsetstat = True

    async def _remove_tree(self, session: Session, tree: RemoteTree, top: bytes) -> None:
        assert top, "never remove the endpoint root"
        below = [r for r in tree.entries if r == top or r.startswith(top + b"/")]
        for rel in sorted(below, key=lambda r: r.count(b"/"), reverse=True):
            entry = tree.entries.pop(rel)
            if entry.kind == DIR:
                await session.sftp.rmdir(session.path(rel))
            else:
                await session.sftp.remove(session.path(rel))
                self.stats.files_deleted += 1

    def _report(self, *, force: bool = False) -> None:
        progress = MirrorProgress(
            self.todo_files, self.stats.files_uploaded, self.todo_bytes, self.done_bytes, "upload"
        )
        self.progress(progress, force=force)

    def _open_local(self, entry: Entry) -> int:
        """The scratch copy of ``entry``, reached without following a link."""
        parts = os.fsdecode(entry.rel).split("/")
        try:
            parent = safefs.open_below(self.src_fd, parts[:-1], shown(entry.rel))
            try:
                fd = os.open(parts[-1], safefs.READ_FLAGS, dir_fd=parent)
            finally:
                os.close(parent)
        except (OSError, safefs.LocalFsError) as exc:
            raise SftpError(
                "failed", f"reading the restored copy of {shown(entry.rel)}: {exc}"
            ) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
            os.close(fd)
            raise SftpError("failed", f"the restored copy of {shown(entry.rel)} changed")
        return fd

    async def _same(
        self,
        session: Session,
        f: asyncssh.SFTPClientFile,
        fd: int,
        size: int,
        on_bytes: Callable[[int], None] | None = None,
    ) -> bool:
        """Whether the remote ``f`` holds exactly the ``size`` bytes of local ``fd``."""

        def compare(_fd: int, data: bytes, offset: int) -> int:
            if os.pread(fd, len(data), offset) != data:
                raise _Differs
            return len(data)

        block = block_size_for(
            session.sftp.limits.max_read_len, self.block_size, unknown=self.block_size
        )
        try:
            got = await pull_file(
                f,
                fd,
                size,
                block_size=block,
                max_requests=self.max_requests,
                write=compare,
                on_bytes=on_bytes,
                slots=self.slots,
            )
        except _Differs:
            return False
        if got != size:
            return False
        async with self.slots:
            tail = await f.read(1, size)  # nothing beyond: it did not grow
        return not tail

    async def _compare_all(
        self, session: Session, alike: list[tuple[Entry, Entry]], todo: list[Entry]
    ) -> None:
        files_total, bytes_total = len(alike), sum(e.size for e, _ in alike)
        files_done = bytes_done = 0

        def report(force: bool = False) -> None:
            done = MirrorProgress(files_total, files_done, bytes_total, bytes_done, "compare")
            self.progress(done, force=force)

        def on_bytes(n: int) -> None:
            nonlocal bytes_done
            bytes_done += n
            report()

        async def one(pair: tuple[Entry, Entry]) -> None:
            nonlocal files_done
            entry, have = pair
            path = session.path(entry.rel)
            fd = self._open_local(entry)
            try:
                try:
                    f = await session.sftp.open(path, "rb", block_size=0)
                except (asyncssh.SFTPPermissionDenied, asyncssh.SFTPNoSuchFile):
                    same = False  # unreadable or gone: written anew
                else:
                    try:
                        same = await self._same(session, f, fd, entry.size, on_bytes)
                    finally:
                        with contextlib.suppress(asyncssh.Error, OSError):
                            await f.close()
            except (asyncssh.Error, OSError) as exc:
                raise classify(exc, f"comparing {shown(entry.rel)}") from None
            finally:
                os.close(fd)
            self.stats.files_compared += 1
            files_done += 1
            if not same:
                self.stats.files_rewritten += 1
                todo.append(entry)
            elif have.mode != entry.mode:
                try:
                    await session.sftp.chmod(path, entry.mode)
                except (asyncssh.Error, OSError) as exc:
                    raise classify(exc, f"setting the mode of {shown(entry.rel)}") from None

        queue: asyncio.Queue[tuple[Entry, Entry]] = asyncio.Queue()
        for pair in sorted(alike, key=lambda p: p[0].size, reverse=True):
            queue.put_nowait(pair)
        await run_pool(self.parallel_files, queue, one)
        if alike:
            report(force=True)

    async def _send(self, session: Session, entry: Entry) -> None:
        parent, _, _ = entry.rel.rpartition(b"/")
        tmp = (parent + b"/" if parent else b"") + (
            f"{local.TEMP_PREFIX}{secrets.token_hex(6)}{local.TEMP_SUFFIX}".encode()
        )
        sent = 0

        def progress(n: int) -> None:
            nonlocal sent
            self.done_bytes += n
            sent += n
            self._report()

        fd = self._open_local(entry)
        self.temps.add(tmp)
        try:
            f = await session.sftp.open(
                session.path(tmp),
                _NEW_FILE,
                asyncssh.SFTPAttrs(permissions=0o600),
                encoding=None,
                block_size=0,
            )
            try:
                await _push_file(
                    f,
                    fd,
                    entry.size,
                    block_size=block_size_for(
                        session.sftp.limits.max_write_len, self.block_size, unknown=32 * 1024
                    ),
                    max_requests=self.max_requests,
                    on_bytes=progress,
                    slots=self.slots,
                )
                verified = await self._same(session, f, fd, entry.size)
            finally:
                with contextlib.suppress(asyncssh.Error, OSError):
                    await f.close()
            if not verified:
                raise _not_verified(entry.rel, "its bytes read back differ from the snapshot's")
            attrs = asyncssh.SFTPAttrs(permissions=entry.mode, atime=entry.mtime, mtime=entry.mtime)
            await session.sftp.setstat(session.path(tmp), attrs)
            await self._replace(session, tmp, entry.rel)
            self.temps.discard(tmp)
            now = await session.sftp.lstat(session.path(entry.rel))
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, f"uploading {shown(entry.rel)}") from None
        finally:
            os.close(fd)
        if (
            now.type != asyncssh.FILEXFER_TYPE_REGULAR
            or now.size != entry.size
            or now.mtime != entry.mtime
            or (now.permissions or 0) & 0o7777 != entry.mode
        ):
            raise _not_verified(entry.rel, "its size, mode or mtime differ after the rename")
        self.stats.files_verified += 1
        self.stats.files_uploaded += 1
        self.stats.bytes_uploaded += sent

    async def _replace(self, session: Session, tmp: bytes, rel: bytes) -> None:
        try:
            await session.sftp.posix_rename(session.path(tmp), session.path(rel))
        except asyncssh.SFTPOpUnsupported:
            # Plain SFTP v3 rename refuses an existing target: remove it first.
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await session.sftp.remove(session.path(rel))
            await session.sftp.rename(session.path(tmp), session.path(rel))


_NEW_FILE = asyncssh.FXF_READ | asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_EXCL


class _Differs(Exception):
    """Raised inside a read-back comparison at the first differing block."""


def _not_verified(rel: bytes, why: str) -> SftpError:
    return SftpError(
        "restore_not_verified",
        f"{shown(rel)} was uploaded but {why}",
        hint="something else writes into the pod's folder during the restore, or the SFTP "
        "server does not keep what it is sent; stop the pod's writers and retry",
    )


async def _push_file(
    f: asyncssh.SFTPClientFile,
    fd: int,
    size: int,
    *,
    block_size: int,
    max_requests: int,
    on_bytes: Callable[[int], None],
    slots: asyncio.Semaphore,
) -> int:
    """Write the first ``size`` bytes of local ``fd`` into remote ``f`` (opened with
    ``block_size=0``) with up to ``max_requests`` writes in flight. Returns the bytes
    sent."""
    pending: set[asyncio.Task[int]] = set()

    async def write(offset: int, data: bytes) -> int:
        async with slots:
            await f.write(data, offset)
        return len(data)

    offset = 0
    sent = 0
    try:
        while offset < size or pending:
            while offset < size and len(pending) < max_requests:
                data = os.pread(fd, min(block_size, size - offset), offset)
                if not data:
                    size = offset  # shrank: the read-back comparison will say so
                    break
                pending.add(asyncio.ensure_future(write(offset, data)))
                offset += len(data)
            if not pending:
                break
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                n = task.result()
                sent += n
                on_bytes(n)
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return sent
