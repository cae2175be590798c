"""A restore preview of a `local` pod: what ``localfs.push`` would change in the pod's
folder, found by reading both trees and writing nothing.

It follows ``push`` decision by decision: a folder whose mode differs gets its mode, a
link whose text differs is replaced, a file is written when its bytes differ (compared
byte by byte whatever its size and mtime say) and gets the snapshot's mode and mtime to
the nanosecond; ``delete_extra`` (mirror) removes what the snapshot lacks; an entry of
another kind is replaced, a folder with everything below it. Folder mtimes are not
reported (writing into a folder changes its mtime; the restore puts it back).

The pod's folder is read like ``push`` writes it: through descriptors opened without
following links (``safefs``), so no link inside it leads a read outside it."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from app.integrations import safefs
from app.integrations.localfs import _missing_in, _prepare_subpath
from app.integrations.safefs import LocalFsError, lstat_at
from app.integrations.treediff import TreeDiff

__all__ = ["compare"]


def _kind(st: os.stat_result) -> str | None:
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return None  # sockets, fifos, devices: a restore neither writes nor compares them


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _listing(fd: int) -> list[tuple[str, os.stat_result]]:
    out = []
    for name in sorted(os.listdir(fd)):
        st = lstat_at(fd, name)
        if st is not None:
            out.append((name, st))
    return out


class _Walk:
    def __init__(self, diff: TreeDiff, delete_extra: bool, cancel: asyncio.Event | None) -> None:
        self.diff = diff
        self.delete_extra = delete_extra
        self.cancel = cancel

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise LocalFsError("canceled", "canceled")

    # -- one side only ------------------------------------------------------------------

    def added_tree(self, src: int, name: str, st: os.stat_result, rel: str) -> None:
        kind = _kind(st)
        if kind is None:
            return
        self.diff.added(rel, kind, st.st_size if kind == "file" else 0)
        if kind == "dir":
            fd = safefs.open_dir_at(src, name, rel)
            try:
                for child, cst in _listing(fd):
                    self.added_tree(fd, child, cst, _join(rel, child))
            finally:
                os.close(fd)

    def deleted_tree(self, dst: int, name: str, st: os.stat_result, rel: str) -> None:
        """Everything ``remove_at`` would remove, deepest last."""
        self.check_cancel()
        kind = _kind(st) or "other"
        self.diff.deleted(rel, kind)
        if kind == "dir":
            self.below_deleted(dst, name, rel)

    # -- both sides ---------------------------------------------------------------------

    def folder(self, src: int, dst: int, rel: str) -> None:
        """``localfs._sync_dir``: the folder ``dst`` of the pod against ``src``."""
        self.check_cancel()
        mine = _listing(src)
        if self.delete_extra:
            names = {name for name, _ in mine}
            for name, st in _listing(dst):
                if name not in names:
                    self.deleted_tree(dst, name, st, _join(rel, name))
        for name, st in mine:
            self.entry(src, dst, name, st, _join(rel, name))

    def entry(self, src: int, dst: int, name: str, st: os.stat_result, rel: str) -> None:
        kind = _kind(st)
        if kind is None:
            return
        have = lstat_at(dst, name)
        if have is None:
            self.added_tree(src, name, st, rel)
            return
        have_kind = _kind(have)
        if have_kind != kind:
            self.diff.changed(rel, kind, st.st_size if kind == "file" else 0, ["type"])
            if have_kind == "dir":  # removed with everything below it
                self.below_deleted(dst, name, rel)
            if kind == "dir":
                fd = safefs.open_dir_at(src, name, rel)
                try:
                    for child, cst in _listing(fd):
                        self.added_tree(fd, child, cst, _join(rel, child))
                finally:
                    os.close(fd)
            return
        if kind == "dir":
            mode = [] if stat.S_IMODE(have.st_mode) == stat.S_IMODE(st.st_mode) else ["mode"]
            self.diff.changed(rel, kind, 0, mode)
            s = safefs.open_dir_at(src, name, rel)
            try:
                d = safefs.open_dir_at(dst, name, rel)
                try:
                    self.folder(s, d, rel)
                finally:
                    os.close(d)
            finally:
                os.close(s)
        elif kind == "link":
            same = os.readlink(name, dir_fd=src) == os.readlink(name, dir_fd=dst)
            self.diff.changed(rel, kind, 0, [] if same else ["content"])
        else:
            self.diff.changed(rel, kind, st.st_size, self.file_reasons(src, dst, name, st, have))

    def below_deleted(self, dst: int, name: str, rel: str) -> None:
        """What lies below the pod's folder ``rel``, which the restore removes."""
        try:
            fd = safefs.open_dir_at(dst, name, rel)
        except (OSError, LocalFsError):
            # Its contents are not known (the restore would fail there): said, not skipped.
            self.diff.unreadable_folder(rel)
            return
        try:
            for child, cst in _listing(fd):
                self.deleted_tree(fd, child, cst, _join(rel, child))
        finally:
            os.close(fd)

    def file_reasons(
        self, src: int, dst: int, name: str, st: os.stat_result, have: os.stat_result
    ) -> list[str]:
        if (have.st_dev, have.st_ino) == (st.st_dev, st.st_ino):
            return []  # the very same file (hard-linked by an earlier restore)
        reasons = []
        if have.st_size != st.st_size:
            reasons += ["size", "content"]
        elif not _same_bytes(src, dst, name, st.st_size):
            reasons.append("content")
        if stat.S_IMODE(have.st_mode) != stat.S_IMODE(st.st_mode):
            reasons.append("mode")
        if have.st_mtime_ns != st.st_mtime_ns:
            reasons.append("mtime")
        return reasons

    # -- a partial restore ----------------------------------------------------------------

    def removed_subpath(self, dst: int | None, parts: list[str]) -> None:
        """Mirror mode, a path the snapshot lacks: ``localfs._remove_subpath`` removes it."""
        if dst is None:
            return
        try:
            d = safefs.open_below(dst, parts[:-1], "/".join(parts[:-1]))
        except (FileNotFoundError, LocalFsError):
            return
        try:
            st = lstat_at(d, parts[-1])
            if st is not None:
                self.deleted_tree(d, parts[-1], st, "/".join(parts))
        finally:
            os.close(d)

    def subpath(self, src: int, dst: int | None, parts: list[str]) -> None:
        """``localfs._push_subpath``: the folders above the path are made where missing
        (reported as added), then the path itself is compared."""
        if self.delete_extra and _missing_in(src, parts):
            self.removed_subpath(dst, parts)
            return
        opened: list[int] = []
        s, d = src, dst
        rel = ""
        try:
            for part in parts[:-1]:
                rel = _join(rel, part)
                s_st = lstat_at(s, part)
                if s_st is None or not stat.S_ISDIR(s_st.st_mode):
                    return  # not in the snapshot (the restore job names it)
                s = safefs.open_dir_at(s, part, rel)
                opened.append(s)
                have = lstat_at(d, part) if d is not None else None
                if have is None or not stat.S_ISDIR(have.st_mode):
                    if have is None:
                        self.diff.added(rel, "dir", 0)
                    else:
                        self.diff.changed(rel, "dir", 0, ["type"])
                    d = None
                else:
                    assert d is not None
                    d = safefs.open_dir_at(d, part, rel)
                    opened.append(d)
            name = parts[-1]
            rel = _join(rel, name)
            st = lstat_at(s, name)
            if st is None:
                return
            if d is None:
                self.added_tree(s, name, st, rel)
            else:
                self.entry(s, d, name, st, rel)
        finally:
            for fd in opened:
                os.close(fd)


def _same_bytes(src: int, dst: int, name: str, size: int) -> bool:
    """As ``localfs._same_and_fixed`` decides, without fixing anything: a file that cannot
    be read counts as different (the restore writes it anew)."""
    try:
        d = os.open(name, safefs.READ_FLAGS, dir_fd=dst)
    except OSError:
        return False
    try:
        have = os.fstat(d)
        if not stat.S_ISREG(have.st_mode) or have.st_size != size:
            return False
        s = os.open(name, safefs.READ_FLAGS, dir_fd=src)
        try:
            return safefs.same_bytes(s, d, size)
        finally:
            os.close(s)
    except OSError:
        return False
    finally:
        os.close(d)


def _compare(
    src: Path, dest: Path, roots: Sequence[Path] | None, subpaths: list[list[str]], walk: _Walk
) -> None:
    s = safefs.open_folder(src, None, create=False)
    try:
        try:
            d: int | None = safefs.open_folder(dest, roots, create=False)
        except FileNotFoundError:
            d = None  # the restore creates the pod's folder: everything is added
        try:
            if not subpaths:
                if d is None:
                    for name, st in _listing(s):
                        walk.added_tree(s, name, st, name)
                else:
                    walk.folder(s, d, "")
            for parts in subpaths:
                walk.subpath(s, d, parts)
        finally:
            if d is not None:
                os.close(d)
    finally:
        os.close(s)


async def compare(
    src: Path,
    dest: Path,
    *,
    roots: Sequence[Path] | None = None,
    subpaths: Sequence[str] | None = None,
    delete_extra: bool = False,
    cancel: asyncio.Event | None = None,
    limit: int | None = None,
) -> TreeDiff:
    """What ``localfs.push(src, dest, subpaths=…, delete_extra=…)`` would change in
    ``dest``; reads only."""
    prepared = [parts for parts in map(_prepare_subpath, subpaths or []) if parts]
    diff = TreeDiff() if limit is None else TreeDiff(limit=limit)
    await asyncio.to_thread(_compare, src, dest, roots, prepared, _Walk(diff, delete_extra, cancel))
    return diff
