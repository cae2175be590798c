"""Builders and comparisons for the SFTP tests (plain functions, real files)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from app.integrations.sftp import WriteFn
from app.kit.netpolicy import Policy

LOOPBACK = Policy.from_settings(["127.0.0.0/8", "::1/128"])
T0 = 1_600_000_000  # a fixed, whole-second mtime for files the tests create


def write(path: Path, data: bytes | str, *, mode: int = 0o644, mtime: int = T0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    os.utime(path, (mtime, mtime))
    return path


def build_pod(root: Path, *, big_mb: int = 0) -> None:
    """A tree with the shapes that matter: nested folders, spaces, non-ASCII, empty
    files, modes, relative and absolute symlinks, an empty folder, optionally a big file."""
    write(root / "index.html", "<h1>hello</h1>\n")
    write(root / "empty.txt", b"")
    write(root / "with space" / "file name.txt", "spaces\n", mode=0o600)
    write(root / "ünïcödé" / "日本語.txt", "ok\n")
    write(root / "bin" / "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    write(root / "deep" / "a" / "b" / "c" / "d.bin", os.urandom(70_000))
    write(root / "medium.bin", os.urandom(3 * 1024 * 1024 + 17), mtime=T0 + 5)
    (root / "empty dir").mkdir(parents=True)
    (root / "private").mkdir(mode=0o750)
    write(root / "private" / "key.pem", "secret\n", mode=0o400)
    os.symlink("index.html", root / "link-rel")
    os.symlink("/etc/hostname", root / "link-abs")
    os.symlink("does/not/exist", root / "link-dangling")
    for link in ("link-rel", "link-abs", "link-dangling"):  # links have their own mtime
        os.utime(root / link, (T0 - 7, T0 - 7), follow_symlinks=False)
    if big_mb:
        write(root / "big.bin", os.urandom(big_mb * 1024 * 1024))


def state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a mirror must reproduce, keyed by relative path (links not followed)."""
    out: dict[str, tuple[Any, ...]] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path), int(st.st_mtime))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode) | 0o700, int(st.st_mtime))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = ("file", digest, stat.S_IMODE(st.st_mode) | 0o400, int(st.st_mtime))
    return out


def temp_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.startswith(".podbackup-") and p.is_file()]


def full_after(limit: int) -> WriteFn:
    """A pwrite that fails with ENOSPC once ``limit`` bytes were written."""
    written = 0

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        nonlocal written
        if written + len(data) > limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.pwrite(fd, data, offset)
        written += n
        return n

    return pwrite
