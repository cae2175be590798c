"""The `local` file source: a folder on the worker's own host (operators only).

Backups stage it under ``files/`` like an SFTP mirror, so every snapshot has the same
layout. Staging uses hard links when the folder and the cache share a filesystem (no data
is copied, and restic still sees sizes and mtimes unchanged), and an incremental copy
(size + mtime) otherwise.

Restores push files back from the scratch restore. A file whose size and mtime match is
still compared byte by byte (bitrot, or a change that kept its timestamp, must not
survive a restore), and every file written is checked afterwards: the same inode as the
scratch copy when hard-linked, its bytes re-read when copied.

The pod's folder is tenant-controlled: every operation goes through ``safefs`` (folder
descriptors opened without following links, temporary files with random names and
``O_EXCL``), so no link inside it leads a write, rename or delete outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from app.integrations import safefs
from app.integrations.safefs import LocalFsError, lstat_at, open_dir_at, remove_at

__all__ = ["LocalFsError", "LocalStats", "push", "stage"]


@dataclass
class LocalStats:
    files_total: int = 0
    dirs_total: int = 0
    symlinks_total: int = 0
    bytes_total: int = 0
    files_copied: int = 0
    bytes_copied: int = 0
    files_linked: int = 0
    bytes_linked: int = 0
    files_deleted: int = 0
    files_compared: int = 0  # same size and mtime: compared byte by byte (restores)
    files_rewritten: int = 0  # ... and their bytes differed: written again
    files_verified: int = 0  # written, then checked against the scratch copy
    unreadable: list[dict[str, str]] = field(default_factory=list)


Progress = Callable[[LocalStats], None]
# Comparisons read from the page cache or the disk and release the GIL while they do.
COMPARE_THREADS = 2
POOL_MIN_SIZE = 1 << 20  # smaller files: a thread's hand-off costs more than it saves


@dataclass
class _Run:
    link: bool
    delete_extra: bool
    compare: bool  # restores: compare same-looking files by content, verify what is written
    stats: LocalStats
    cancel: asyncio.Event | None
    on_progress: Progress | None
    pool: Executor | None = None  # compares run here, beside the walk

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise LocalFsError("canceled", "canceled")

    def unreadable(self, rel: str, error: str) -> None:
        """A backup lists what it could not read; a restore that could not bring a path
        back fails (it never says succeeded with a file left behind)."""
        if self.compare:
            raise LocalFsError(
                "restore_incomplete",
                f"'{rel or '/'}' could not be restored into the pod's folder: {error}",
                hint="the worker's user needs to read the scratch restore and write the "
                "pod's folder; fix the folder's permissions and retry",
            )
        self.stats.unreadable.append({"path": rel or "/", "error": error})


def _sync_dir(src: int, dst: int, run: _Run, rel: str) -> None:
    """Make the folder ``dst`` hold ``src``'s tree."""
    run.check_cancel()
    try:
        with os.scandir(src) as it:
            entries = {e.name: e for e in it}
    except PermissionError:
        run.unreadable(rel, "permission denied")
        return
    if run.delete_extra:
        for name in os.listdir(dst):
            if name not in entries:
                run.stats.files_deleted += remove_at(dst, name)
    listed: list[tuple[str, os.stat_result]] = []
    for name in sorted(entries):
        try:
            listed.append((name, entries[name].stat(follow_symlinks=False)))
        except FileNotFoundError:
            continue  # gone since the listing
    # Files that look unchanged are compared in the pool while the walk goes on; the
    # folder descriptors stay open until every comparison is done.
    compares: dict[str, tuple[os.stat_result, Future[bool]]] = {}
    stats_of = dict(listed)
    try:
        if run.compare and run.pool is not None:
            for name, st in listed:
                if stat.S_ISREG(st.st_mode) and st.st_size >= POOL_MIN_SIZE:
                    current = lstat_at(dst, name)
                    if current is not None and _looks_same(current, st):
                        future = run.pool.submit(_same_and_fixed, src, dst, name, st)
                        compares[name] = (current, future)
        for name, st in listed:
            if name not in compares:
                _sync_entry(src, dst, name, st, run, f"{rel}/{name}")
        for name, (current, future) in compares.items():
            _file_entry(
                src, dst, name, stats_of[name], run, f"{rel}/{name}", (current, future.result())
            )
    finally:
        if compares:
            wait([f for _, f in compares.values()])


def _sync_entry(src: int, dst: int, name: str, st: os.stat_result, run: _Run, rel: str) -> None:
    stats = run.stats
    if stat.S_ISDIR(st.st_mode):
        stats.dirs_total += 1
        try:
            s = open_dir_at(src, name, rel)
        except PermissionError:
            run.unreadable(rel, "permission denied")
            return
        except (LocalFsError, FileNotFoundError):
            run.unreadable(rel, "changed while being read")
            return
        try:
            d = open_dir_at(dst, name, rel, make=True, replace=True)
            try:
                _sync_dir(s, d, run, rel)
                # Only what differs: a chmod or utime changes the folder's ctime, which
                # restic records, and an unchanged pod's staged tree would then differ
                # from its last snapshot's in every folder.
                now = os.fstat(d)
                if stat.S_IMODE(now.st_mode) != stat.S_IMODE(st.st_mode):
                    os.fchmod(d, stat.S_IMODE(st.st_mode))
                if now.st_mtime_ns != st.st_mtime_ns:
                    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(d)
        finally:
            os.close(s)
    elif stat.S_ISLNK(st.st_mode):
        stats.symlinks_total += 1
        text = os.readlink(name, dir_fd=src)
        current = lstat_at(dst, name)
        if current is not None and stat.S_ISLNK(current.st_mode):
            if os.readlink(name, dir_fd=dst) == text:
                return
        if current is not None:
            remove_at(dst, name)
        os.symlink(text, name, dir_fd=dst)
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
    elif stat.S_ISREG(st.st_mode):
        _file_entry(src, dst, name, st, run, rel, None)
    # sockets, fifos and devices are skipped, like restic does for special files


def _file_entry(
    src: int,
    dst: int,
    name: str,
    st: os.stat_result,
    run: _Run,
    rel: str,
    compared: tuple[os.stat_result, bool] | None,
) -> None:
    try:
        _sync_file(src, dst, name, st, run, rel, compared)
    except PermissionError:
        run.unreadable(rel, "permission denied")
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise LocalFsError("disk_full", "no space left on the worker's disk") from exc
        raise
    if run.on_progress is not None:
        run.on_progress(run.stats)


def _looks_same(current: os.stat_result, st: os.stat_result) -> bool:
    """Same size and mtime (whole seconds), but not the very same file."""
    return (
        stat.S_ISREG(current.st_mode)
        and (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino)
        and current.st_size == st.st_size
        and int(current.st_mtime) == int(st.st_mtime)
    )


def _sync_file(
    src: int,
    dst: int,
    name: str,
    st: os.stat_result,
    run: _Run,
    rel: str,
    compared: tuple[os.stat_result, bool] | None,
) -> None:
    """``compared``: the pod's file as it was found and whether its bytes matched (a
    comparison already made in the pool)."""
    stats = run.stats
    stats.files_total += 1
    stats.bytes_total += st.st_size
    current = compared[0] if compared is not None else lstat_at(dst, name)
    if current is not None and stat.S_ISREG(current.st_mode):
        if (current.st_dev, current.st_ino) == (st.st_dev, st.st_ino):
            return  # the very same file (a hard link made by an earlier run)
        if _looks_same(current, st):
            if not run.compare:
                _fix_metadata(dst, name, st)
                return
            stats.files_compared += 1
            same = compared[1] if compared is not None else _same_and_fixed(src, dst, name, st)
            if same:
                return
            stats.files_rewritten += 1
    elif current is not None and stat.S_ISDIR(current.st_mode):
        stats.files_deleted += remove_at(dst, name)
        current = None
    if run.link and _link(src, dst, name, replace=current is not None):
        stats.files_linked += 1
        stats.bytes_linked += st.st_size
        if run.compare:  # the pod's entry is now the scratch copy itself
            now = lstat_at(dst, name)
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise _not_verified(rel)
            stats.files_verified += 1
        return
    copied = _copy(src, dst, name, st, verify=run.compare, rel=rel)
    stats.files_copied += 1
    stats.bytes_copied += copied
    if run.compare:
        stats.files_verified += 1


def _not_verified(rel: str) -> LocalFsError:
    return LocalFsError(
        "restore_not_verified",
        f"'{rel}' does not hold the snapshot's bytes after it was written",
        hint="something else writes into the pod's folder during the restore; stop it and retry",
    )


def _fix_metadata(dst: int, name: str, st: os.stat_result) -> None:
    fd = os.open(name, safefs.READ_FLAGS, dir_fd=dst)
    try:
        have = os.fstat(fd)
        if stat.S_ISREG(have.st_mode) and stat.S_IMODE(have.st_mode) != stat.S_IMODE(st.st_mode):
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
    finally:
        os.close(fd)


def _same_and_fixed(src: int, dst: int, name: str, st: os.stat_result) -> bool:
    """Whether the pod's file holds the scratch copy's bytes; if so, its mode and exact
    mtime are set too. A file that cannot be read (or changed kind) counts as different."""
    try:
        d = os.open(name, safefs.READ_FLAGS, dir_fd=dst)
    except OSError:
        return False
    try:
        have = os.fstat(d)
        if not stat.S_ISREG(have.st_mode) or have.st_size != st.st_size:
            return False
        s = os.open(name, safefs.READ_FLAGS, dir_fd=src)
        try:
            if not safefs.same_bytes(s, d, st.st_size):
                return False
        finally:
            os.close(s)
        try:
            if stat.S_IMODE(have.st_mode) != stat.S_IMODE(st.st_mode):
                os.fchmod(d, stat.S_IMODE(st.st_mode))
            if have.st_mtime_ns != st.st_mtime_ns:
                os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
        except PermissionError:  # not ours to change: write it anew instead
            return False
        return True
    finally:
        os.close(d)


def _link(src: int, dst: int, name: str, *, replace: bool) -> bool:
    """Hard-link the source file into ``dst`` (over the entry there when ``replace``).
    False when the two folders cannot share the file (another filesystem)."""
    target = safefs.temp_name() if replace else name
    try:
        os.link(name, target, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            return False
        raise
    if replace:
        _rename(dst, target, name)
    return True


def _rename(dst: int, tmp: str, name: str) -> None:
    try:
        os.rename(tmp, name, src_dir_fd=dst, dst_dir_fd=dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dst)
        raise


def _copy(src: int, dst: int, name: str, st: os.stat_result, *, verify: bool, rel: str) -> int:
    """Copy into a new temporary file of ``dst``, set its mode and mtime, (``verify``:
    re-read it against the source), rename it over ``name``. Returns the bytes copied."""
    s = os.open(name, safefs.READ_FLAGS, dir_fd=src)
    try:
        have = os.fstat(s)
        if not stat.S_ISREG(have.st_mode):
            raise LocalFsError("changed", f"'{rel}' changed while being read")
        tmp = safefs.temp_name()
        d = os.open(tmp, safefs.NEW_FLAGS, 0o600, dir_fd=dst)
        try:
            try:
                copied = safefs.copy_fd(s, d, have.st_size)
                if verify and (copied != st.st_size or not safefs.same_bytes(s, d, copied)):
                    raise _not_verified(rel)
                os.fchmod(d, stat.S_IMODE(st.st_mode))
                os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
                written = os.fstat(d)
            finally:
                os.close(d)
            os.rename(tmp, name, src_dir_fd=dst, dst_dir_fd=dst)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dst)
            raise
        if verify:
            now = lstat_at(dst, name)
            if now is None or (now.st_dev, now.st_ino) != (written.st_dev, written.st_ino):
                raise _not_verified(rel)
        return copied
    finally:
        os.close(s)


def _prepare_subpath(rel: str) -> list[str]:
    parts = [p for p in rel.strip("/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise LocalFsError("bad_path", f"'{rel}' is not a plain relative path")
    return parts


def _missing_in(root: int, parts: list[str]) -> bool:
    """Whether the tree at ``root`` lacks ``parts`` (a link on the way counts as missing)."""
    try:
        fd = safefs.open_below(root, parts[:-1], "/".join(parts[:-1]))
    except (FileNotFoundError, LocalFsError):
        return True
    try:
        return lstat_at(fd, parts[-1]) is None
    finally:
        os.close(fd)


def _remove_subpath(dst_root: int, parts: list[str], run: _Run) -> None:
    """Mirror mode, a path the restored tree lacks: remove it from the pod's folder (the
    folders above it stay)."""
    rel = "/".join(parts[:-1])
    try:
        d = safefs.open_below(dst_root, parts[:-1], rel)
    except (FileNotFoundError, LocalFsError):
        return  # not in the pod either (or a link on the way, never followed)
    try:
        run.stats.files_deleted += remove_at(d, parts[-1])
    finally:
        os.close(d)


def _push_subpath(src_root: int, dst_root: int, parts: list[str], run: _Run) -> None:
    """Bring one restored path (and the folders above it) into the pod's folder; in
    mirror mode a path the restored tree lacks is removed from it."""
    if run.delete_extra and _missing_in(src_root, parts):
        _remove_subpath(dst_root, parts, run)
        return
    chain: list[tuple[int, int, bool]] = []  # (scratch folder, pod folder, made by this run)
    s, d = src_root, dst_root
    try:
        rel = ""
        for part in parts[:-1]:
            rel = f"{rel}/{part}"
            had = lstat_at(d, part)
            s = open_dir_at(s, part, rel)
            chain.append((s, -1, had is None or not stat.S_ISDIR(had.st_mode)))
            d = open_dir_at(d, part, rel, make=True, replace=True)
            chain[-1] = (s, d, chain[-1][2])
        name = parts[-1]
        st = lstat_at(s, name)
        if st is not None:
            _sync_entry(s, d, name, st, run, f"{rel}/{name}")
        # folders this run made get the snapshot's mode and mtime, deepest first
        for s_fd, d_fd, made in reversed(chain):
            if made:
                want = os.fstat(s_fd)
                os.fchmod(d_fd, stat.S_IMODE(want.st_mode))
                os.utime(d_fd, ns=(want.st_atime_ns, want.st_mtime_ns))
    finally:
        for s_fd, d_fd, _ in chain:
            os.close(s_fd)
            if d_fd >= 0:
                os.close(d_fd)


def _stage(src: Path, dest: Path, roots: Sequence[Path] | None, run: _Run) -> None:
    try:
        s = safefs.open_folder(src, roots, create=False)
    except FileNotFoundError:
        raise LocalFsError(
            "not_found", f"the pod folder {src} does not exist", hint="check the pod's local path"
        ) from None
    try:
        d = safefs.open_folder(dest, None, create=True)
        try:
            _sync_dir(s, d, run, "")
        finally:
            os.close(d)
    finally:
        os.close(s)


def _push(
    src: Path, dest: Path, roots: Sequence[Path] | None, subpaths: list[list[str]], run: _Run
) -> None:
    s = safefs.open_folder(src, None, create=False)
    try:
        d = safefs.open_folder(dest, roots, create=True)
        try:
            if not subpaths:
                _sync_dir(s, d, run, "")
            for parts in subpaths:
                _push_subpath(s, d, parts, run)
        finally:
            os.close(d)
    finally:
        os.close(s)


async def stage(
    src: Path,
    dest: Path,
    *,
    roots: Sequence[Path] | None = None,
    on_progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
) -> LocalStats:
    """Make ``dest`` an up-to-date copy of the pod folder ``src`` (hard links where
    possible). ``roots``: PODBACKUP_LOCAL_ROOTS, below which ``src`` is opened without
    following a link."""
    run = _Run(True, True, False, LocalStats(), cancel, on_progress)
    await asyncio.to_thread(_stage, src, dest, roots, run)
    return run.stats


async def push(
    src: Path,
    dest: Path,
    *,
    roots: Sequence[Path] | None = None,
    subpaths: Sequence[str] | None = None,
    delete_extra: bool = False,
    on_progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
    link: bool = False,
) -> LocalStats:
    """Bring the restored tree ``src`` into the pod folder ``dest``: what differs in size
    or mtime is written, what looks the same is compared byte by byte (and written when
    it differs), everything written is verified. ``subpaths`` restricts it to those
    paths (relative to both); ``delete_extra`` ("mirror") removes what ``src`` lacks.

    ``link``: hard-link instead of copying where both lie on one filesystem (``src`` is a
    scratch restore that is deleted afterwards, so this moves the data without writing it
    a second time). ``roots``: as for ``stage``, for ``dest``."""
    prepared = [p for p in map(_prepare_subpath, subpaths or []) if p]
    run = _Run(link, delete_extra, True, LocalStats(), cancel, on_progress)
    pool = ThreadPoolExecutor(COMPARE_THREADS, thread_name_prefix="restore-compare")
    run.pool = pool
    try:
        await asyncio.to_thread(_push, src, dest, roots, prepared, run)
    finally:
        # Abandoned (the task was cancelled): queued comparisons are dropped; the walk
        # still waits for those running before it closes their folders.
        pool.shutdown(wait=False, cancel_futures=True)
    return run.stats
