"""Small helpers shared by the benchmarks: test data, timing, printing."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MB = 1024 * 1024


def build_tree(
    root: Path, *, large_count: int, large_mb: int, small_count: int, small_kb: int
) -> tuple[int, int]:
    """Random (incompressible) files: a few large ones and many small ones spread over
    folders. Returns (files, bytes)."""
    files = total = 0
    for i in range(large_count):
        path = root / "large" / f"file-{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            for _ in range(large_mb):
                fh.write(os.urandom(MB))
        files, total = files + 1, total + large_mb * MB
    for i in range(small_count):
        path = root / "small" / f"dir-{i % 50:02d}" / f"file-{i:05d}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(small_kb * 1024))
        files, total = files + 1, total + small_kb * 1024
    return files, total


def tree_totals(root: Path) -> tuple[int, int]:
    """(regular files, bytes) below root, links not followed."""
    files = total = 0
    for top, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(top, name))
            if not os.path.islink(os.path.join(top, name)):
                files, total = files + 1, total + st.st_size
    return files, total


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MB / seconds:8.1f} MB/s" if seconds > 0 else "     inf MB/s"


def row(label: str, seconds: float, nbytes: int, extra: str = "") -> None:
    print(f"  {label:<44} {seconds:8.2f} s  {rate(nbytes, seconds)}  {extra}".rstrip())
