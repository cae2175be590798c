"""File operations below a folder that never follow a symlink out of it.

A pod's folder (and the trees a tenant's snapshot restores into scratch) may hold links
planted to redirect a write, a rename or a delete. Everything here works relative to
open folder descriptors: each folder is opened with ``O_NOFOLLOW | O_DIRECTORY`` from its
parent's descriptor, files are created with ``O_EXCL | O_NOFOLLOW`` under random names,
and renames and deletes name an entry of an open folder. A link found where a folder is
expected is either refused (``not_a_folder``, naming the entry) or, where the caller
restores a folder there, removed and replaced by a real folder; it is never followed.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from app.integrations.errors import IntegrationError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in after the lstat must not block the open
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
NEW_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_PREFIX = ".podbackup-"
TEMP_SUFFIX = ".tmp"
BLOCK = 1 << 20


class LocalFsError(IntegrationError):
    """A local file operation refused or failed (links, types, space)."""


def temp_name() -> str:
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"


def _is_link_or_file(exc: OSError) -> bool:
    return exc.errno in (errno.ELOOP, errno.ENOTDIR)


def not_a_folder(rel: str) -> LocalFsError:
    return LocalFsError(
        "not_a_folder",
        f"'{rel}' is a symlink or a file where a folder was expected; it was not followed",
        hint="replace it with a real folder, or restore the folder above it",
    )


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_dir_at(
    dir_fd: int, name: str, rel: str, *, make: bool = False, replace: bool = False
) -> int:
    """A descriptor of the folder ``name`` in ``dir_fd``, never through a link.

    ``make``: create it when missing. ``replace``: a link or file in its place is removed
    (not followed) and a folder made; without it, that is ``not_a_folder``."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not make:
            raise
    except OSError as exc:
        if not _is_link_or_file(exc):
            raise
        if not replace:
            raise not_a_folder(rel) from None
        remove_at(dir_fd, name)
    os.mkdir(name, 0o700, dir_fd=dir_fd)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:  # swapped for a link between the mkdir and the open
        if _is_link_or_file(exc):
            raise not_a_folder(rel) from None
        raise


def remove_at(dir_fd: int, name: str) -> int:
    """Remove the entry ``name`` of ``dir_fd`` (a whole folder: its contents first, each
    opened without following links). Returns how many files and links went away."""
    st = lstat_at(dir_fd, name)
    if st is None:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return 1
    count = 0
    fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o700 != 0o700:  # a read-only folder's entries can't be removed
            os.fchmod(fd, mode | 0o700)
        for child in os.listdir(fd):
            count += remove_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
    return count


def _below(path: Path, roots: Sequence[Path]) -> tuple[Path, list[str]] | None:
    for root in roots:
        for base in dict.fromkeys([Path(os.path.abspath(root)), root.resolve()]):
            if path == base or base in path.parents:
                return base, list(path.relative_to(base).parts)
    return None


def open_folder(path: Path, roots: Sequence[Path] | None, *, create: bool) -> int:
    """A descriptor of the folder ``path``.

    With ``roots`` (PODBACKUP_LOCAL_ROOTS), ``path`` must lie below one of them: the root
    is opened as the operator wrote it and every component below it without following a
    link (``not_a_folder`` names a link on the way; ``outside_roots`` when no root holds
    it). Without ``roots`` (the worker's own cache), only the last component is opened
    without following. ``create``: missing folders are made."""
    path = Path(os.path.abspath(path))
    if roots is not None:
        found = _below(path, roots)
        if found is None:
            raise LocalFsError(
                "outside_roots",
                f"the folder {path} is not under PODBACKUP_LOCAL_ROOTS",
                hint="allowed roots: " + (", ".join(map(str, roots)) or "none"),
            )
        base, parts = found
    else:
        base, parts = path.parent, [path.name]
        if create:
            base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        done = base
        for part in parts:
            done = done / part
            child = open_dir_at(fd, part, str(done), make=create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_below(root_fd: int, parts: Sequence[str], rel: str) -> int:
    """A descriptor of the folder ``root/parts…`` (each opened without following)."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            child = open_dir_at(fd, part, rel)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


_buffers = threading.local()


def same_bytes(a: int, b: int, size: int) -> bool:
    """Whether the first ``size`` bytes of two open files are equal (and both hold that
    many). Reads into two buffers kept per thread (no allocation per block)."""
    if size < BLOCK:
        small = os.pread(a, size, 0)
        return len(small) == size and small == os.pread(b, size, 0)
    pair: tuple[bytearray, bytearray] | None = getattr(_buffers, "pair", None)
    if pair is None:
        pair = _buffers.pair = (bytearray(BLOCK), bytearray(BLOCK))
    x, y = pair
    offset = 0
    while offset + BLOCK <= size:
        if os.preadv(a, [x], offset) != BLOCK or os.preadv(b, [y], offset) != BLOCK:
            return False
        if x != y:
            return False
        offset += BLOCK
    rest = size - offset
    if not rest:
        return True
    tail = os.pread(a, rest, offset)
    return len(tail) == rest and tail == os.pread(b, rest, offset)


def copy_fd(src: int, dst: int, size: int) -> int:
    """Copy ``size`` bytes from ``src`` to ``dst`` (kernel-side where it can). Returns the
    bytes copied (fewer when the source shrank meanwhile)."""
    done = 0
    kernel = True
    while done < size:
        n = 0
        if kernel:
            try:
                n = os.copy_file_range(src, dst, size - done, done, done)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                kernel = False
                continue
        else:
            data = os.pread(src, min(BLOCK, size - done), done)
            n = len(data)
            view = memoryview(data)
            offset = done
            while view:
                written = os.pwrite(dst, view, offset)
                view, offset = view[written:], offset + written
        if n == 0:
            break
        done += n
    return done
