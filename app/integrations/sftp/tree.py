"""Listing a remote tree over SFTP (lstat semantics: symlinks are never followed).

Paths inside a tree are relative ``bytes`` (``b""`` is the root, ``b"a/b"`` below it):
names are kept exactly as the server sends them, so non-UTF-8 names survive.
"""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import asyncssh

from app.integrations.sftp.connection import Session
from app.integrations.sftp.errors import SftpError, classify
from app.integrations.sftp.transfer import run_pool

log = logging.getLogger(__name__)

FILE, DIR, LINK = "file", "dir", "link"
_KINDS = {
    asyncssh.FILEXFER_TYPE_REGULAR: FILE,
    asyncssh.FILEXFER_TYPE_DIRECTORY: DIR,
    asyncssh.FILEXFER_TYPE_SYMLINK: LINK,
}


@dataclass(slots=True)
class Entry:
    rel: bytes
    kind: str  # FILE | DIR | LINK
    size: int
    mtime: int  # whole seconds, as SFTP v3 carries them
    mode: int  # permission bits only
    target: bytes | None = None  # symlink text, verbatim


@dataclass
class RemoteTree:
    entries: dict[bytes, Entry]  # parents always before their children
    unreadable: dict[bytes, str] = field(default_factory=dict)  # rel -> reason
    unlisted: set[bytes] = field(default_factory=set)  # folders whose content is unknown
    unread_links: set[bytes] = field(default_factory=set)  # symlinks left out (in unreadable)


def valid_name(name: bytes) -> bool:
    """A single path component; anything else from a server is hostile or broken."""
    return name not in (b"", b".", b"..") and b"/" not in name and b"\0" not in name


def shown(rel: bytes) -> str:
    """``/relative/path`` for people and JSON (undecodable bytes escaped)."""
    return "/" + rel.decode("utf-8", "backslashreplace")


def join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def parents(rel: bytes) -> list[bytes]:
    """``b"a/b/c"`` -> ``[b"a", b"a/b"]``."""
    parts = rel.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


def minimal_starts(starts: Iterable[bytes]) -> list[bytes]:
    """Drop starts that lie below another start (``a`` covers ``a/b``)."""
    result: list[bytes] = []
    for rel in sorted(set(starts)):
        if not any(rel == s or not s or rel.startswith(s + b"/") for s in result):
            result.append(rel)
    return result


# Deeper trees are refused (a server looping through a link, or one that lies): the
# cache side holds one folder descriptor per level, and no honest pod nests this deep.
MAX_DEPTH = 128


def hostile(rel: bytes, message: str) -> SftpError:
    """The listing of or around ``rel`` is one no honest server sends: fail, never guess."""
    log.warning("sftp: hostile listing at %r", shown(rel)[:300])
    return SftpError("hostile_listing", message)


def _entry(rel: bytes, attrs: asyncssh.SFTPAttrs) -> Entry | None:
    kind = _KINDS.get(attrs.type)
    if kind is None and attrs.permissions is not None:
        kind = {stat.S_IFREG: FILE, stat.S_IFDIR: DIR, stat.S_IFLNK: LINK}.get(
            stat.S_IFMT(attrs.permissions)
        )
    if kind is None:
        return None  # sockets, fifos, devices: nothing to copy
    default_mode = 0o755 if kind == DIR else 0o644
    mode = attrs.permissions & 0o7777 if attrs.permissions is not None else default_mode
    return Entry(rel, kind, attrs.size or 0, int(attrs.mtime or 0), mode)


async def _lstat(session: Session, rel: bytes) -> Entry | None:
    try:
        attrs = await session.sftp.lstat(session.path(rel))
    except asyncssh.SFTPNoSuchFile:
        return None
    return _entry(rel, attrs)


async def scan(
    session: Session,
    *,
    starts: Iterable[bytes] = (b"",),
    concurrency: int = 16,
    on_entry: Callable[[Entry], None] | None = None,
) -> RemoteTree:
    """List the tree below each of ``starts`` (relative paths), plus their parents.

    Folders the server will not list and links it will not read are recorded in
    ``unreadable``; entries that vanish while listing are left out. Other errors raise.
    """
    root_attrs = await session.sftp.stat(session.root)
    root = _entry(b"", root_attrs)
    assert root is not None
    root.kind = DIR
    tree = RemoteTree({b"": root})
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    links = asyncio.Semaphore(concurrency)

    def add(entry: Entry) -> None:
        if entry.rel in tree.entries:  # only a lying listing can name an entry twice
            raise hostile(entry.rel, f"the SFTP server listed {shown(entry.rel)!r} twice")
        if entry.rel.count(b"/") >= MAX_DEPTH:
            raise hostile(
                entry.rel,
                f"the SFTP server listed {shown(entry.rel)[:200]!r}…, nested deeper than "
                f"{MAX_DEPTH} folders",
            )
        tree.entries[entry.rel] = entry
        if on_entry is not None:
            on_entry(entry)

    for start in minimal_starts(starts):
        if not start:
            queue.put_nowait(b"")
            continue
        for rel in [*parents(start), start]:
            known = tree.entries.get(rel)
            if known is not None:
                if known.kind == DIR:
                    continue
                break
            entry = await _lstat(session, rel)
            if entry is None:
                break
            if entry.kind == LINK:
                await _read_link(session, tree, entry, links)
                if entry.target is not None:
                    add(entry)
                break
            add(entry)
            if entry.kind != DIR:
                break
            if rel == start:
                queue.put_nowait(rel)

    async def list_dir(rel: bytes) -> None:
        try:
            names = await session.sftp.readdir(session.path(rel))
        except asyncssh.SFTPPermissionDenied:
            if not rel:
                raise SftpError(
                    "failed", "the SFTP server refuses to list the remote folder"
                ) from None
            tree.unreadable[rel] = "permission denied (folder not listed)"
            tree.unlisted.add(rel)
            return
        except asyncssh.SFTPNoSuchFile:
            if rel:  # vanished since its parent was listed
                tree.entries.pop(rel, None)
                return
            raise
        found_links = []
        seen: set[bytes] = set()
        for name in names:
            raw = name.filename
            assert isinstance(raw, bytes)
            if raw in (b".", b".."):
                continue
            if not valid_name(raw):
                raise hostile(
                    rel,
                    f"the SFTP server listed an invalid name in {shown(rel)!r}: "
                    f"{raw.decode('utf-8', 'backslashreplace')!r} (a name must be one path "
                    "component: not empty, no '/', no NUL byte)",
                )
            if raw in seen:
                raise hostile(
                    join(rel, raw),
                    f"the SFTP server listed {shown(join(rel, raw))!r} twice in one listing",
                )
            seen.add(raw)
            entry = _entry(join(rel, raw), name.attrs)
            if entry is None:
                continue
            if entry.kind == LINK:
                found_links.append(entry)
                continue
            add(entry)
            if entry.kind == DIR:
                queue.put_nowait(entry.rel)
        if found_links:
            await asyncio.gather(*(_read_link(session, tree, e, links) for e in found_links))
            for entry in found_links:
                if entry.target is not None:
                    add(entry)

    try:
        await run_pool(concurrency, queue, list_dir)
    except (asyncssh.Error, OSError) as exc:
        raise classify(exc, "listing the remote folder") from None
    return tree


async def _read_link(
    session: Session, tree: RemoteTree, entry: Entry, sem: asyncio.Semaphore
) -> None:
    async with sem:
        try:
            target = await session.sftp.readlink(session.path(entry.rel))
        except asyncssh.SFTPPermissionDenied:
            tree.unreadable[entry.rel] = "permission denied (symlink not read)"
            tree.unread_links.add(entry.rel)
            return
        except asyncssh.SFTPNoSuchFile:
            # Vanished, or a server that will not show this link's target (asyncssh's
            # chroot answers "no such file" for a target outside it): ask again.
            if await _lstat(session, entry.rel) is None:
                return
            tree.unreadable[entry.rel] = "the server will not read this symlink (not copied)"
            tree.unread_links.add(entry.rel)
            return
        except (asyncssh.SFTPFailure, asyncssh.SFTPOpUnsupported) as exc:
            reason = exc.reason or type(exc).__name__
            tree.unreadable[entry.rel] = f"the server refused to read this symlink: {reason}"
            tree.unread_links.add(entry.rel)
            return
    if not isinstance(target, bytes) or not target or b"\0" in target:
        tree.unreadable[entry.rel] = "the server sent an invalid symlink text (not copied)"
        tree.unread_links.add(entry.rel)
        return
    entry.target = target
