"""The local side of a mirror: bring ``dest`` in line with a scanned remote tree.

Whatever a pod's server lists, nothing here writes, renames or deletes outside
``dest``: every operation on ``dest/a/b/name`` opens ``a`` and then ``b`` one component
at a time from a descriptor of ``dest`` with ``O_NOFOLLOW | O_DIRECTORY`` and acts on
``name`` relative to that descriptor (``openat``-style). A symlink (or a file) where a
folder is expected stops the operation with ``UnsafeEntry`` instead of being followed;
the last component is examined with lstat and replaced, never followed. Symlinks from
the server are data: they are stored as links and nothing is ever read or written
through one. The tree scan refuses listings that would put a link above an entry (see
tree.py); this is the second line of defence.

Code running in worker threads opens its own descriptors (from the ``dest`` path the
service chose), so a canceled coroutine never closes one a thread still uses.

Local modes: folders get at least ``u+rwx`` and files ``u+r`` so the worker can
always update the mirror and restic can read it, whatever the pod's modes are.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from app.integrations.sftp.models import MirrorStats
from app.integrations.sftp.transfer import WriteFn, write_all
from app.integrations.sftp.tree import (
    DIR,
    FILE,
    LINK,
    Entry,
    RemoteTree,
    join,
    parents,
    shown,
    valid_name,
)

TEMP_PREFIX = ".podbackup-"
TEMP_SUFFIX = ".tmp"
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeEntry(Exception):
    """``rel`` (below ``dest``) would be reached through a symlink or a non-folder, or is
    not made of single path components. Nothing was done through it."""

    def __init__(self, rel: bytes, why: str) -> None:
        super().__init__(f"{shown(rel)} {why}")
        self.rel = rel
        self.why = why


def local_path(dest: Path, rel: bytes) -> Path:
    return dest / os.fsdecode(rel) if rel else dest


def file_mode(mode: int) -> int:
    return mode | 0o400


def dir_mode(mode: int) -> int:
    return mode | 0o700


def temp_name() -> bytes:
    return f"{TEMP_PREFIX}{secrets.token_hex(6)}{TEMP_SUFFIX}".encode()


def split(rel: bytes) -> tuple[bytes, bytes]:
    """``b"a/b/c"`` -> ``(b"a/b", b"c")``; ``b"c"`` -> ``(b"", b"c")``. Refuses any
    path with an empty, ``.``, ``..`` or NUL component before a system call sees it."""
    if not all(valid_name(part) for part in rel.split(b"/")):
        raise UnsafeEntry(rel, "is not made of single path components")
    parent, _, name = rel.rpartition(b"/")
    return parent, name


def _kind(st: os.stat_result) -> str | None:
    if stat.S_ISDIR(st.st_mode):
        return DIR
    if stat.S_ISLNK(st.st_mode):
        return LINK
    if stat.S_ISREG(st.st_mode):
        return FILE
    return None


def prepare_dest(dest: Path) -> None:
    """Create ``dest`` (0700); refuse one that is a symlink or not a folder."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(open_root(dest))


def open_root(dest: Path) -> int:
    """A descriptor of ``dest`` itself (never through a symlink at ``dest``)."""
    try:
        return os.open(dest, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotADirectoryError(f"{dest} is not a real folder") from None
        raise


def _open_child(dir_fd: int, name: bytes, rel: bytes) -> int:
    if not valid_name(name):
        raise UnsafeEntry(rel, "is not a single path component")
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeEntry(rel, "is a symlink or a file in the cache, not a folder") from None
        raise


def open_dir(root: int, rel: bytes) -> int:
    """A new descriptor of the folder ``rel`` below ``root``, opened one component at
    a time without following any symlink. The caller closes it."""
    fd = os.dup(root)
    done = b""
    try:
        for part in rel.split(b"/") if rel else []:
            done = join(done, part)
            child = _open_child(fd, part, done)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def parent_of(dest: Path, rel: bytes) -> Iterator[tuple[int, bytes]]:
    """``(descriptor of rel's folder, rel's last name)``, both closed on exit."""
    parent, name = split(rel)
    root = open_root(dest)
    try:
        fd = open_dir(root, parent)
    finally:
        os.close(root)
    try:
        yield fd, name
    finally:
        os.close(fd)


class _Dirs:
    """Folder descriptors below ``root`` for one single-threaded pass, least recently
    used closed first. Use a descriptor right after ``get`` (a later ``get`` may close it)."""

    def __init__(self, root: int, limit: int = 64) -> None:
        self.root = root
        self.limit = max(2, limit)
        self.fds: OrderedDict[bytes, int] = OrderedDict()

    def get(self, rel: bytes) -> int:
        if not rel:
            return self.root
        fd = self.fds.get(rel)
        if fd is not None:
            self.fds.move_to_end(rel)
            return fd
        parent, name = split(rel)
        fd = _open_child(self.get(parent), name, rel)
        self.fds[rel] = fd
        while len(self.fds) > self.limit:
            _, old = self.fds.popitem(last=False)
            os.close(old)
        return fd

    def close(self) -> None:
        while self.fds:
            _, fd = self.fds.popitem()
            os.close(fd)


def _lstat_at(dir_fd: int, name: bytes | str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def remove_at(dir_fd: int, name: bytes | str) -> int:
    """Remove a file, link or whole folder named ``name`` in ``dir_fd`` (links are
    removed, never followed). Returns how many files and links went away."""
    st = _lstat_at(dir_fd, name)
    if st is None:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return 1
    fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    try:
        count = sum(remove_at(fd, child) for child in os.listdir(fd))
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
    return count


def remove(dest: Path, rel: bytes) -> int:
    """Remove the entry ``rel`` below ``dest`` (see ``remove_at``)."""
    with parent_of(dest, rel) as (fd, name):
        return remove_at(fd, name)


def _prune(fd: int, rel: bytes, tree: RemoteTree, stats: MirrorStats) -> None:
    """Remove what the remote no longer has (or has as another kind), top-down."""
    with os.scandir(fd) as it:
        children = [(c.name, c.stat(follow_symlinks=False)) for c in it]
    for name, st in children:
        child_rel = join(rel, os.fsencode(name))
        remote = tree.entries.get(child_rel)
        kind = _kind(st)
        if remote is None or remote.kind != kind:
            stats.files_deleted += remove_at(fd, name)
        elif kind == DIR:
            child = _open_child(fd, os.fsencode(name), child_rel)
            try:
                _prune(child, child_rel, tree, stats)
            finally:
                os.close(child)


def _same_file(st: os.stat_result, entry: Entry) -> bool:
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == entry.size
        and st.st_mtime_ns == entry.mtime * 1_000_000_000
    )


def _chmod_file(dir_fd: int, name: bytes, rel: bytes, mode: int) -> None:
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeEntry(rel, "is no longer a regular file in the cache")
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def reconcile(dest: Path, tree: RemoteTree, stats: MirrorStats) -> list[Entry]:
    """Delete vanished entries, create folders and links; return the files to download."""
    root = open_root(dest)
    dirs = _Dirs(root)
    try:
        _prune(root, b"", tree, stats)
        todo: list[Entry] = []
        for rel, entry in tree.entries.items():
            if not rel:
                continue
            parent, name = split(rel)
            fd = dirs.get(parent)
            st = _lstat_at(fd, name)
            if entry.kind == DIR:
                if st is None:
                    os.mkdir(name, 0o700, dir_fd=fd)
                elif not stat.S_ISDIR(st.st_mode):
                    raise UnsafeEntry(rel, "is not a folder in the cache")
            elif entry.kind == LINK:
                assert entry.target is not None
                if st is not None and stat.S_ISLNK(st.st_mode):
                    if os.readlink(name, dir_fd=fd) == entry.target:
                        continue
                    os.unlink(name, dir_fd=fd)
                elif st is not None:
                    stats.files_deleted += remove_at(fd, name)
                os.symlink(entry.target, name, dir_fd=fd)
            elif st is not None and _same_file(st, entry):
                if stat.S_IMODE(st.st_mode) != file_mode(entry.mode):
                    _chmod_file(fd, name, rel, file_mode(entry.mode))
            else:
                todo.append(entry)
        return todo
    finally:
        dirs.close()
        os.close(root)


def finish(dest: Path, tree: RemoteTree) -> None:
    """Set folder modes and times, and link times, children before parents (writing
    into a folder changes its mtime)."""
    root = open_root(dest)
    dirs = _Dirs(root)
    try:
        for rel, entry in reversed(tree.entries.items()):
            if entry.kind == DIR:
                try:
                    fd = dirs.get(rel)
                except (FileNotFoundError, UnsafeEntry):
                    continue
                st = os.fstat(fd)
                if stat.S_IMODE(st.st_mode) != dir_mode(entry.mode):
                    os.fchmod(fd, dir_mode(entry.mode))
                ns = entry.mtime * 1_000_000_000
                if st.st_mtime_ns != ns:
                    os.utime(fd, ns=(ns, ns))
            elif entry.kind == LINK:
                parent, name = split(rel)
                try:
                    fd = dirs.get(parent)
                except (FileNotFoundError, UnsafeEntry):
                    continue
                st_link = _lstat_at(fd, name)
                if st_link is None or not stat.S_ISLNK(st_link.st_mode):
                    continue
                ns = entry.mtime * 1_000_000_000
                if st_link.st_mtime_ns != ns:
                    with contextlib.suppress(NotImplementedError, OSError):
                        os.utime(name, ns=(ns, ns), dir_fd=fd, follow_symlinks=False)
    finally:
        dirs.close()
        os.close(root)


def store_file(dest: Path, rel: bytes, data: bytes, mode: int, mtime: int, write: WriteFn) -> None:
    """Write a whole (small) file under a temporary name in its folder, set its mode
    and mtime, rename it to ``rel``. Never leaves the temporary behind, even on ENOSPC."""
    with parent_of(dest, rel) as (dir_fd, name):
        _store_at(dir_fd, name, data, mode, mtime, write)


def _store_at(dir_fd: int, name: bytes, data: bytes, mode: int, mtime: int, write: WriteFn) -> None:
    tmp = temp_name()
    fd = os.open(tmp, OPEN_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        try:
            write_all(write, fd, data, 0)
            os.fchmod(fd, file_mode(mode))
            ns = mtime * 1_000_000_000
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


class SmallFiles:
    """Stores whole small files below ``dest``, keeping the folder descriptors it
    opened (one ``open`` per folder, not one per path component per file). Used by one
    thread at a time (store.py); each ``store`` is complete or leaves nothing behind.
    ``close`` when done."""

    def __init__(self, dest: Path, write: WriteFn) -> None:
        self.write = write
        self.root = open_root(dest)
        self.dirs = _Dirs(self.root)

    def store(self, rel: bytes, data: bytes, mode: int, mtime: int) -> None:
        parent, name = split(rel)
        _store_at(self.dirs.get(parent), name, data, mode, mtime, self.write)

    def close(self) -> None:
        self.dirs.close()
        os.close(self.root)


def create_temp(dest: Path, rel: bytes) -> tuple[int, bytes]:
    """A new, empty temporary file beside ``rel``: ``(its descriptor, its name)``."""
    with parent_of(dest, rel) as (dir_fd, _):
        tmp = temp_name()
        return os.open(tmp, OPEN_FLAGS, 0o600, dir_fd=dir_fd), tmp


def commit_temp(dest: Path, rel: bytes, tmp: bytes) -> None:
    """Rename the temporary ``tmp`` (from ``create_temp``) to ``rel``."""
    with parent_of(dest, rel) as (dir_fd, name):
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def drop_temp(dest: Path, rel: bytes, tmp: bytes) -> None:
    """Remove the temporary ``tmp`` beside ``rel`` if it is still there (never raises)."""
    with contextlib.suppress(OSError, UnsafeEntry), parent_of(dest, rel) as (dir_fd, _):
        os.unlink(tmp, dir_fd=dir_fd)


def entry_from_stat(rel: bytes, path: Path, st: os.stat_result) -> Entry | None:
    kind = _kind(st)
    if kind is None:
        return None
    target = os.readlink(os.fsencode(path)) if kind == LINK else None
    size = st.st_size if kind == FILE else 0
    return Entry(rel, kind, size, int(st.st_mtime), stat.S_IMODE(st.st_mode), target)


def scan_local(src: Path, starts: list[bytes]) -> dict[bytes, Entry]:
    """Entries of ``src`` below each start (and the starts' parents), parents first,
    never following a symlink."""
    root = entry_from_stat(b"", src, src.stat())
    if root is None or root.kind != DIR:
        raise NotADirectoryError(f"{src} is not a folder")
    entries: dict[bytes, Entry] = {b"": root}

    def walk(rel: bytes) -> None:
        with os.scandir(local_path(src, rel)) as it:
            children = sorted(it, key=lambda c: c.name)
        subdirs = []
        for child in children:
            child_rel = join(rel, os.fsencode(child.name))
            entry = entry_from_stat(child_rel, Path(child.path), child.stat(follow_symlinks=False))
            if entry is not None:
                entries[child_rel] = entry
                if entry.kind == DIR:
                    subdirs.append(child_rel)
        for sub in subdirs:
            walk(sub)

    for start in starts:
        chain = [*parents(start), start] if start else []
        reached = True
        for rel in chain:
            known = entries.get(rel)
            if known is None:
                path = local_path(src, rel)
                try:
                    known = entry_from_stat(rel, path, path.lstat())
                except FileNotFoundError:
                    known = None
                if known is None:
                    reached = False
                    break
                entries[rel] = known
            if known.kind != DIR:
                reached = False
                break
        if reached:
            walk(start)
    return entries
