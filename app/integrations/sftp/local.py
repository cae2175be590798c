"""The local side of a mirror: bring ``dest`` in line with a scanned remote tree.

Everything here runs in a worker thread and never follows a symlink: entries are
examined with lstat, removed or replaced top-down, so by the time a file is written
into ``dest/a/b`` both ``a`` and ``a/b`` are real folders this code created or checked.
A remote symlink therefore cannot redirect a write outside ``dest``.

Local modes: folders get at least ``u+rwx`` and files ``u+r`` so the worker can
always update the mirror and restic can read it, whatever the pod's modes are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from app.integrations.sftp.models import MirrorStats
from app.integrations.sftp.transfer import WriteFn, write_all
from app.integrations.sftp.tree import DIR, FILE, LINK, Entry, RemoteTree, join, parents

TEMP_PREFIX = ".podbackup-"
TEMP_SUFFIX = ".tmp"
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def local_path(dest: Path, rel: bytes) -> Path:
    return dest / os.fsdecode(rel) if rel else dest


def file_mode(mode: int) -> int:
    return mode | 0o400


def dir_mode(mode: int) -> int:
    return mode | 0o700


def _kind(st: os.stat_result) -> str | None:
    if stat.S_ISDIR(st.st_mode):
        return DIR
    if stat.S_ISLNK(st.st_mode):
        return LINK
    if stat.S_ISREG(st.st_mode):
        return FILE
    return None


def remove(path: Path) -> int:
    """Remove a file, link or whole folder (links are removed, never followed).
    Returns how many files and links went away."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        path.unlink()
        return 1
    count = 0
    for top, dirs, files in os.walk(path):  # os.walk does not descend into links
        count += len(files) + sum(1 for d in dirs if os.path.islink(os.path.join(top, d)))
    shutil.rmtree(path)
    return count


def _prune(dest: Path, rel: bytes, tree: RemoteTree, stats: MirrorStats) -> None:
    """Remove what the remote no longer has (or has as another kind), top-down."""
    with os.scandir(local_path(dest, rel)) as it:
        children = list(it)
    for child in children:
        child_rel = join(rel, os.fsencode(child.name))
        remote = tree.entries.get(child_rel)
        st = child.stat(follow_symlinks=False)
        kind = _kind(st)
        if remote is None or remote.kind != kind:
            stats.files_deleted += remove(Path(child.path))
        elif kind == DIR:
            _prune(dest, child_rel, tree, stats)


def _same_file(st: os.stat_result, entry: Entry) -> bool:
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == entry.size
        and st.st_mtime_ns == entry.mtime * 1_000_000_000
    )


def reconcile(dest: Path, tree: RemoteTree, stats: MirrorStats) -> list[Entry]:
    """Delete vanished entries, create folders and links; return the files to download."""
    _prune(dest, b"", tree, stats)
    todo: list[Entry] = []
    for rel, entry in tree.entries.items():
        if not rel:
            continue
        path = local_path(dest, rel)
        try:
            st: os.stat_result | None = path.lstat()
        except FileNotFoundError:
            st = None
        if entry.kind == DIR:
            if st is None:
                path.mkdir(mode=0o700)
        elif entry.kind == LINK:
            assert entry.target is not None
            if st is not None and os.readlink(os.fsencode(path)) == entry.target:
                continue
            if st is not None:
                path.unlink()
            os.symlink(entry.target, os.fsencode(path))
        elif st is not None and _same_file(st, entry):
            if stat.S_IMODE(st.st_mode) != file_mode(entry.mode):
                path.chmod(file_mode(entry.mode))
        else:
            todo.append(entry)
    return todo


def _set_times(path: Path, entry: Entry, st: os.stat_result) -> None:
    ns = entry.mtime * 1_000_000_000
    if st.st_mtime_ns != ns:
        os.utime(path, ns=(ns, ns), follow_symlinks=False)


def finish(dest: Path, tree: RemoteTree) -> None:
    """Set folder modes and times, and link times, children before parents (writing
    into a folder changes its mtime)."""
    for rel, entry in reversed(tree.entries.items()):
        if entry.kind == FILE:
            continue
        path = local_path(dest, rel)
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if entry.kind == DIR and stat.S_ISDIR(st.st_mode):
            if stat.S_IMODE(st.st_mode) != dir_mode(entry.mode):
                path.chmod(dir_mode(entry.mode))
            _set_times(path, entry, st)
        elif entry.kind == LINK and stat.S_ISLNK(st.st_mode):
            with contextlib.suppress(NotImplementedError, OSError):
                _set_times(path, entry, st)


def store_file(tmp: Path, path: Path, data: bytes, mode: int, mtime: int, write: WriteFn) -> None:
    """Write a whole (small) file under the temporary name ``tmp``, set its mode and
    mtime, rename it to ``path``. Never leaves ``tmp`` behind, even on ENOSPC."""
    fd = os.open(tmp, OPEN_FLAGS, 0o600)
    try:
        try:
            write_all(write, fd, data, 0)
            os.fchmod(fd, file_mode(mode))
        finally:
            os.close(fd)
        ns = mtime * 1_000_000_000
        os.utime(tmp, ns=(ns, ns))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def prepare_dest(dest: Path) -> None:
    """Create ``dest``; refuse one that is a symlink or not a folder."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    if dest.is_symlink() or not dest.is_dir():
        raise NotADirectoryError(f"{dest} is not a real folder")


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
