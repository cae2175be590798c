"""A restore preview of an SFTP pod: what ``upload`` would change in the pod's folder,
found by listing and reading it over SFTP and writing nothing.

It follows ``upload`` step by step: remote entries of another kind (or links with
another text) are replaced, ``delete_extra`` (mirror) removes what the restored tree
lacks (only inside the restored paths), a file is written when its size, mtime or bytes
differ (bytes read back and compared whenever the sizes match), and every file and
folder written or kept gets the snapshot's mode and mtime (whole seconds, as SFTP
carries them). Folder mtimes are not reported (writing into a folder changes its
mtime; the restore puts it back)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from bisect import bisect_left
from pathlib import Path

import asyncssh

from app.integrations import safefs
from app.integrations.sftp import local
from app.integrations.sftp.connection import Session, open_session
from app.integrations.sftp.endpoint import SftpEndpoint
from app.integrations.sftp.errors import SftpError, classify
from app.integrations.sftp.transfer import cancellable, run_pool
from app.integrations.sftp.tree import DIR, FILE, LINK, Entry, RemoteTree, scan
from app.integrations.sftp.upload import _inside, _starts, _Upload
from app.integrations.treediff import TreeDiff
from app.kit.netpolicy import Policy

__all__ = ["compare"]


def _rel(rel: bytes) -> str:
    return rel.decode("utf-8", "backslashreplace")


async def compare(
    endpoint: SftpEndpoint,
    policy: Policy,
    src: Path,
    *,
    subpaths: list[str] | None = None,
    delete_extra: bool = False,
    cancel: asyncio.Event | None = None,
    limit: int | None = None,
    parallel_files: int = 4,
) -> TreeDiff:
    """What ``upload(endpoint, policy, src, subpaths=…, delete_extra=…)`` would change in
    the endpoint's folder; reads only. Raises SftpError or OutboundAddressRefused."""
    starts = _starts(subpaths)
    diff = TreeDiff() if limit is None else TreeDiff(limit=limit)

    async def body() -> TreeDiff:
        try:
            async with open_session(endpoint, policy, gather_writes=False) as session:
                mine = await asyncio.to_thread(local.scan_local, Path(src), starts)
                theirs = await scan(session, starts=starts)
                reader = _Upload(Path(src), starts, False, None)
                reader.src_fd = safefs.open_folder(Path(src), None, create=False)
                try:
                    await _compare(session, reader, mine, theirs, starts, delete_extra,
                                   diff, parallel_files)  # fmt: skip
                finally:
                    os.close(reader.src_fd)
        except SftpError:
            raise
        except (OSError, asyncssh.Error) as exc:
            raise classify(exc, "comparing the pod's files") from None
        return diff

    return await cancellable(body(), cancel)


def _below(keys: list[bytes], top: bytes) -> list[bytes]:
    """The entries below the folder ``top``, from the tree's sorted keys ("0" follows "/")."""
    return keys[bisect_left(keys, top + b"/") : bisect_left(keys, top + b"0")]


async def _compare(
    session: Session,
    reader: _Upload,
    mine: dict[bytes, Entry],
    theirs: RemoteTree,
    starts: list[bytes],
    delete_extra: bool,
    diff: TreeDiff,
    parallel_files: int,
) -> None:
    remote = dict(theirs.entries)
    # 1. what upload removes first: another kind in the way, or extra (mirror)
    replaced: dict[bytes, list[str]] = {}
    keys = sorted(theirs.entries)
    for rel in keys:
        entry = remote.get(rel)
        if entry is None or not rel or not _inside(rel, starts):
            continue  # gone with a removed parent, the root, or outside the restored paths
        wanted = mine.get(rel)
        if wanted is not None and wanted.kind != entry.kind:
            replaced[rel] = ["type"]
        elif wanted is not None and entry.kind == LINK and wanted.target != entry.target:
            replaced[rel] = ["content"]
        elif wanted is None and delete_extra:
            diff.deleted(_rel(rel), entry.kind)
        else:
            continue
        for child_rel in _below(keys, rel) if entry.kind == DIR else []:
            child = remote.pop(child_rel, None)
            if child is not None:
                diff.deleted(_rel(child_rel), child.kind)
        remote.pop(rel)
    # 2. each entry of the restored tree against what is left
    reasons: dict[bytes, list[str]] = {}
    alike: list[tuple[Entry, list[str]]] = []
    for rel, entry in mine.items():
        if not rel:
            continue
        have = remote.get(rel)
        inside = _inside(rel, starts)
        if have is None:
            reasons[rel] = replaced.get(rel, ["add"])
            continue
        if not inside:
            continue  # a folder above a restored path, left as it is
        found: list[str] = []
        if entry.kind == DIR:
            if have.mode != entry.mode:
                found.append("mode")
        elif entry.kind == LINK:
            if have.mtime != entry.mtime:
                found.append("mtime")
        else:
            if have.mode != entry.mode:
                found.append("mode")
            if have.mtime != entry.mtime:
                found.append("mtime")
            if have.size != entry.size:
                found[:0] = ["size", "content"]
            else:
                alike.append((entry, found))
        reasons[rel] = found
    # 3. same size: the bytes decide, read back as upload reads them
    await _compare_bytes(session, reader, alike, parallel_files)
    for rel in sorted(reasons):
        entry, why = mine[rel], reasons[rel]
        if why == ["add"]:
            diff.added(_rel(rel), entry.kind, entry.size if entry.kind == FILE else 0)
        else:
            diff.changed(_rel(rel), entry.kind, entry.size, why)


async def _compare_bytes(
    session: Session, reader: _Upload, alike: list[tuple[Entry, list[str]]], parallel: int
) -> None:
    async def one(pair: tuple[Entry, list[str]]) -> None:
        entry, found = pair
        fd = reader._open_local(entry)
        try:
            try:
                f = await session.sftp.open(session.path(entry.rel), "rb", block_size=0)
            except (asyncssh.SFTPPermissionDenied, asyncssh.SFTPNoSuchFile):
                same = False  # unreadable or gone: upload writes it anew
            else:
                try:
                    same = await reader._same(session, f, fd, entry.size)
                finally:
                    with contextlib.suppress(asyncssh.Error, OSError):
                        await f.close()
        finally:
            os.close(fd)
        if not same:
            found.insert(0, "content")

    queue: asyncio.Queue[tuple[Entry, list[str]]] = asyncio.Queue()
    for pair in alike:
        queue.put_nowait(pair)
    await run_pool(parallel, queue, one)
