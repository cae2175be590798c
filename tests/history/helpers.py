"""A local pod whose files the test changes between backups."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from tests.backups.helpers import backup, create_pod, wait_index
from tests.conftest import Tenant, auth

BASE_TIME = 1_700_000_000


def write(root: Path, rel: str, data: bytes, mtime: int, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    os.utime(path, (mtime, mtime))


async def local_pod(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    database: dict[str, Any] | None = None,
) -> dict[str, Any]:
    (tmp_path / "pod").mkdir(exist_ok=True)
    return await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        database=database,
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )


async def snapshot(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> str:
    """A backup, its browse index ready; the snapshot's id."""
    job = await backup(client, tenant.headers, pod_id)
    assert job["status"] == "succeeded", job
    snap = str(job["result"]["snapshot_id"])
    await wait_index(client, tenant.headers, pod_id, snap)
    return snap
