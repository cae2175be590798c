"""Push a restored tree back into a pod over SFTP, sending only what differs.

A file is uploaded when the remote copy is missing or differs in size or mtime, into
a temporary name in the same remote folder, then renamed over the old one
(``posix-rename@openssh.com`` where the server has it). Modes and mtimes follow the
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
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncssh

from app.integrations.sftp import local
from app.integrations.sftp.connection import Session, open_session
from app.integrations.sftp.endpoint import SftpEndpoint
from app.integrations.sftp.errors import SftpError, classify
from app.integrations.sftp.models import MirrorProgress, UploadStats
from app.integrations.sftp.transfer import Throttle, block_size_for, cancellable, run_pool
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
            async with open_session(endpoint, policy) as session:
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

    async def run(self, session: Session) -> None:
        mine = await asyncio.to_thread(local.scan_local, self.src, self.starts)
        theirs = await scan(session, starts=self.starts)
        self.stats.files_total = sum(
            1 for e in mine.values() if e.kind == FILE and _inside(e.rel, self.starts)
        )
        try:
            await self._apply(session, mine, theirs)
        finally:
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
        # 2. folders and links, parents first; collect the files to send
        todo: list[Entry] = []
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
            elif have.mode != entry.mode:
                await session.sftp.chmod(path, entry.mode)
        # 3. file contents
        self.todo_files = len(todo)
        self.todo_bytes = sum(e.size for e in todo)
        queue: asyncio.Queue[Entry] = asyncio.Queue()
        for entry in sorted(todo, key=lambda e: e.size, reverse=True):
            queue.put_nowait(entry)
        await run_pool(self.parallel_files, queue, lambda e: self._send(session, e))
        self._report(force=True)
        # 4. folder modes and times, children first (writing into a folder changes it);
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

    async def _send(self, session: Session, entry: Entry) -> None:
        parent, _, _ = entry.rel.rpartition(b"/")
        tmp = (parent + b"/" if parent else b"") + (
            f"{local.TEMP_PREFIX}{secrets.token_hex(6)}{local.TEMP_SUFFIX}".encode()
        )
        sent = 0

        def progress(_src: bytes, _dst: bytes, copied: int, _total: int) -> None:
            nonlocal sent
            self.done_bytes += copied - sent
            sent = copied
            self._report()

        self.temps.add(tmp)
        try:
            await session.sftp.put(
                os.fsencode(local.local_path(self.src, entry.rel)),
                session.path(tmp),
                block_size=block_size_for(
                    session.sftp.limits.max_write_len, self.block_size, unknown=32 * 1024
                ),
                max_requests=self.max_requests,
                progress_handler=progress,
            )
            attrs = asyncssh.SFTPAttrs(permissions=entry.mode, atime=entry.mtime, mtime=entry.mtime)
            await session.sftp.setstat(session.path(tmp), attrs)
            await self._replace(session, tmp, entry.rel)
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, f"uploading {shown(entry.rel)}") from None
        self.temps.discard(tmp)
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
