"""The `local` file source: a folder on the worker's own host (operators only).

Backups stage it under ``files/`` like an SFTP mirror, so every snapshot has the same
layout. Staging uses hard links when the folder and the cache share a filesystem (no data
is copied, and restic still sees sizes and mtimes unchanged), and an incremental copy
(size + mtime) otherwise. Restores push files back the same way, copying only what differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class LocalFsError(Exception):
    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


@dataclass
class LocalStats:
    files_total: int = 0
    dirs_total: int = 0
    symlinks_total: int = 0
    bytes_total: int = 0
    files_copied: int = 0
    bytes_copied: int = 0
    files_linked: int = 0
    files_deleted: int = 0
    unreadable: list[dict[str, str]] = field(default_factory=list)


Progress = Callable[[LocalStats], None]


def _same(src: os.stat_result, dst: os.stat_result) -> bool:
    if (src.st_dev, src.st_ino) == (dst.st_dev, dst.st_ino):
        return True
    return src.st_size == dst.st_size and int(src.st_mtime) == int(dst.st_mtime)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _copy_file(src: Path, dst: Path, st: os.stat_result) -> None:
    tmp = dst.with_name(f".{dst.name}.podbackup-tmp")
    try:
        shutil.copyfile(src, tmp, follow_symlinks=False)
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sync_tree(
    src: Path,
    dst: Path,
    *,
    link: bool,
    delete_extra: bool,
    stats: LocalStats,
    cancel: asyncio.Event | None,
    on_progress: Progress | None,
    rel: str = "",
) -> None:
    """Make ``dst`` hold ``src``'s tree; never follows symlinks."""
    if cancel is not None and cancel.is_set():
        raise LocalFsError("canceled", "canceled")
    dst.mkdir(parents=True, exist_ok=True)
    try:
        entries = {e.name: e for e in os.scandir(src)}
    except PermissionError:
        stats.unreadable.append({"path": rel or "/", "error": "permission denied"})
        return
    if delete_extra:
        for name in os.listdir(dst):
            if name not in entries:
                _remove(dst / name)
                stats.files_deleted += 1
    for name, entry in sorted(entries.items()):
        target = dst / name
        child_rel = f"{rel}/{name}"
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                _remove(target)
            stats.dirs_total += 1
            _sync_tree(
                Path(entry.path),
                target,
                link=link,
                delete_extra=delete_extra,
                stats=stats,
                cancel=cancel,
                on_progress=on_progress,
                rel=child_rel,
            )
            os.chmod(target, stat.S_IMODE(st.st_mode))
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        elif stat.S_ISLNK(st.st_mode):
            stats.symlinks_total += 1
            link_text = os.readlink(entry.path)
            if target.is_symlink() and os.readlink(target) == link_text:
                continue
            if target.exists() or target.is_symlink():
                _remove(target)
            os.symlink(link_text, target)
            with contextlib.suppress(OSError, NotImplementedError):
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        elif stat.S_ISREG(st.st_mode):
            stats.files_total += 1
            stats.bytes_total += st.st_size
            try:
                current = os.lstat(target)
            except FileNotFoundError:
                current = None
            if current is not None and stat.S_ISREG(current.st_mode) and _same(st, current):
                if stat.S_IMODE(current.st_mode) != stat.S_IMODE(st.st_mode):
                    os.chmod(target, stat.S_IMODE(st.st_mode))
                continue
            if current is not None:
                _remove(target)
            try:
                if link:
                    try:
                        os.link(entry.path, target, follow_symlinks=False)
                        stats.files_linked += 1
                        continue
                    except OSError as exc:
                        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                            raise
                _copy_file(Path(entry.path), target, st)
                stats.files_copied += 1
                stats.bytes_copied += st.st_size
            except PermissionError:
                stats.unreadable.append({"path": child_rel, "error": "permission denied"})
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise LocalFsError("disk_full", "no space left on the worker's disk") from exc
                raise
            if on_progress is not None:
                on_progress(stats)
        # sockets, fifos and devices are skipped, like restic does for special files


def _prepare_subpath(rel: str) -> str:
    parts = [p for p in rel.strip("/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise LocalFsError("bad_path", f"'{rel}' is not a plain relative path")
    return "/".join(parts)


async def stage(
    src: Path,
    dest: Path,
    *,
    on_progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
) -> LocalStats:
    """Make ``dest`` an up-to-date copy of ``src`` (hard links where possible)."""
    if not src.is_dir():
        raise LocalFsError(
            "not_found", f"the pod folder {src} does not exist", hint="check the pod's local path"
        )
    stats = LocalStats()
    await asyncio.to_thread(
        _sync_tree,
        src,
        dest,
        link=True,
        delete_extra=True,
        stats=stats,
        cancel=cancel,
        on_progress=on_progress,
    )
    return stats


async def push(
    src: Path,
    dest: Path,
    *,
    subpaths: Sequence[str] | None = None,
    delete_extra: bool = False,
    on_progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
    link: bool = False,
) -> LocalStats:
    """Copy restored files from ``src`` into the pod folder ``dest``, only what differs.

    ``link``: hard-link instead of copying where both lie on one filesystem (``src`` is a
    scratch restore that is deleted afterwards, so this moves the data without writing it
    a second time)."""
    stats = LocalStats()
    pairs = [(src, dest)]
    if subpaths:
        pairs = [(src / p, dest / p) for p in map(_prepare_subpath, subpaths) if p]
    for s, d in pairs:
        if s.is_dir() and not s.is_symlink():
            await asyncio.to_thread(
                _sync_tree,
                s,
                d,
                link=link,
                delete_extra=delete_extra,
                stats=stats,
                cancel=cancel,
                on_progress=on_progress,
            )
        elif s.exists() or s.is_symlink():
            d.parent.mkdir(parents=True, exist_ok=True)
            st = os.lstat(s)
            if stat.S_ISLNK(st.st_mode):
                if d.exists() or d.is_symlink():
                    _remove(d)
                os.symlink(os.readlink(s), d)
            else:
                await asyncio.to_thread(_copy_file, s, d, st)
                stats.files_copied += 1
                stats.bytes_copied += st.st_size
    return stats
