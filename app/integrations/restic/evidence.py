"""Evidence that a snapshot reached the repository, read from the storage itself.

After `restic backup` names a snapshot, its object must be under `snapshots/` in the
repository. Listing that prefix costs one storage request, where `restic snapshots` would
spend ~0.7 s deriving the key again — most of a small backup's overhead. Backends this
module cannot list (none today: S3 and local paths are the service's targets) return None,
and the caller asks restic instead.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.integrations.restic.repository import Repository
from app.integrations.s3 import open_bucket
from app.kit.netpolicy import Policy


def _local_root(url: str) -> Path | None:
    if url.startswith("/"):
        return Path(url)
    if url.startswith("local:"):
        return Path(url[len("local:") :])
    return None


async def snapshot_in_storage(repo: Repository, snapshot_id: str, policy: Policy) -> str | None:
    """The full id of the snapshot object whose name starts with ``snapshot_id``; "" when
    the storage holds none (no evidence); None when this backend cannot be listed here."""
    root = _local_root(repo.url)
    if root is not None:
        names = await asyncio.to_thread(os.listdir, root / "snapshots")
        found = [n for n in names if n.startswith(snapshot_id) and not n.endswith(".tmp")]
        return found[0] if len(found) == 1 else ""
    if repo.s3 is None:
        return None
    access, prefix = repo.s3, repo.s3_prefix
    key_prefix = f"{prefix}/snapshots/{snapshot_id}" if prefix else f"snapshots/{snapshot_id}"
    async with open_bucket(access, policy, max_attempts=3) as bucket:
        listing = await bucket.list_objects(prefix=key_prefix, max_keys=2)
    found = [k.rsplit("/", 1)[-1] for k in listing.keys]
    return found[0] if len(found) == 1 else ""
