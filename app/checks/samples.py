"""Restore a few files of a snapshot and check them against the browse index.

"Hashed against the index", concretely: the index (``snapshot_files``) records each file's
size, not a content hash, and adding one at backup time would mean reading every file of
the pod each night (an unchanged file is never read again by the incremental mirror), so
it is not added. Content is verified by restic itself: a snapshot's tree lists each file's
chunks by their SHA-256, and ``restic restore --verify`` re-reads every restored file and
hashes it chunk by chunk against those ids (after each pack's MAC was checked on the way
in). A sampled file passes when restic verified it and its size equals the index's; its
SHA-256 is reported so a later run can be compared.

The sample is deterministic for a given seed (the check's run number): ``md5(path || seed)``
orders the candidates, so successive checks look at different files.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.restic import Repository, Restic, ResticError
from app.models import Snapshot
from app.snapshots import repository as snapshots

# Failures that say nothing about the snapshot's data: the job fails (or retries) on them.
INFRASTRUCTURE = frozenset(
    {
        "wrong_password",
        "storage_unreachable",
        "repository_locked",
        "repository_not_found",
        "access_denied",
        "target_unusable",
        "interrupted",
        "timeout",
        "disk_full",
    }
)
_GLOB = re.compile(r"([\\*?\[\]])")


@dataclass(frozen=True)
class Sample:
    path: str  # "/files/a/b.txt"
    size: int


@dataclass
class Restored:
    ok: bool
    error: str | None = None
    damaged: bool = False  # restic named corrupt or missing data


def include_pattern(path: str) -> str:
    """restic's --include is a glob per path component: escape glob characters."""
    return _GLOB.sub(r"\\\1", path)


def _key(path: str, seed: str) -> str:
    return hashlib.md5(f"{path}{seed}".encode(), usedforsecurity=False).hexdigest()


async def from_index(
    session: AsyncSession, snap: Snapshot, count: int, max_bytes: int, seed: str
) -> list[Sample]:
    rows = await snapshots.sample_files(session, snap.pk, count, max_bytes, seed)
    return [Sample(f"{parent.rstrip('/')}/{name}", int(size or 0)) for parent, name, size in rows]


async def from_listing(
    restic: Restic,
    repo: Repository,
    snapshot_id: str,
    count: int,
    max_bytes: int,
    seed: str,
    **kw: Any,
) -> list[Sample]:
    """The same choice from `restic ls` when the snapshot is not indexed (flat memory)."""
    heap: list[tuple[str, str, int]] = []  # (negated order key, path, size): keep the smallest

    def _node(node: dict[str, Any]) -> None:
        path = str(node.get("path") or "")
        size = node.get("size")
        if node.get("type") != "file" or size is None or int(size) > max_bytes:
            return
        if path.startswith("/database/") or not path:
            return
        key = _key(path, seed)
        inverted = "".join(f"{15 - int(c, 16):x}" for c in key)
        item = (inverted, path, int(size))
        if len(heap) < count:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)

    if count > 0:
        await restic.ls(repo, snapshot_id, _node, **kw)
    return [Sample(path, size) for _, path, size in sorted(heap, reverse=True)]


async def restore_verified(
    restic: Restic, repo: Repository, snapshot_id: str, paths: list[str], dest: Path, **kw: Any
) -> Restored:
    """`restic restore --verify` of ``paths`` into ``dest``; data problems are returned,
    infrastructure problems raised."""
    args = ["restore", snapshot_id, "--target", str(dest), "--verify"]
    for path in paths:
        args += ["--include", include_pattern(path)]
    try:
        await restic.run(repo, args, **kw)
    except ResticError as exc:
        if exc.code in INFRASTRUCTURE:
            raise
        return Restored(False, exc.message, damaged=exc.code == "repository_damaged")
    return Restored(True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def compare(dest: Path, samples: list[Sample]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each restored sample against the index: present, same size; with its SHA-256."""
    items: list[dict[str, Any]] = []
    problems: list[str] = []
    for sample in samples:
        local = dest / sample.path.lstrip("/")
        item: dict[str, Any] = {"path": sample.path, "size": sample.size}
        if not local.is_file():
            item["ok"] = False
            problems.append(f"{sample.path}: not restored")
        else:
            got = local.stat().st_size
            item["restored_size"] = got
            item["ok"] = got == sample.size
            item["sha256"] = await asyncio.to_thread(sha256_file, local)
            if got != sample.size:
                problems.append(
                    f"{sample.path}: {got} bytes restored, the index says {sample.size}"
                )
        items.append(item)
    return items, problems
