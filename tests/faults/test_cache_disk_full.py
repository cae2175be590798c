"""The worker's cache disk fills up in the middle of the SFTP mirror (a real, small
tmpfs mounted as PODBACKUP_CACHE_DIR): the job fails with `disk_full` and a hint naming
the setting, leaves no partial files behind, and once space is freed the next backup
succeeds from the same cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.integrations.sftp.local import TEMP_PREFIX
from tests.backups.helpers import sftp_files
from tests.conftest import Tenant
from tests.faults.helpers import assert_recovered, backup, fill, local_pod
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess

SMALL, LARGER = "16m", "96m"


@pytest.fixture
def small_cache(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: real ENOSPC in the worker process, nothing injected."""
    cache = tmp_path / "cache"
    cache.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL},mode=0700", "tmpfs", str(cache)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield cache
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)


@pytest.fixture
def settings(settings: Settings, small_cache: Path) -> Settings:
    return settings.model_copy(update={"cache_dir": small_cache})


def leftovers(root: Path) -> list[str]:
    return [
        os.path.join(top, n)
        for top, _, names in os.walk(root)
        for n in names
        if n.startswith(TEMP_PREFIX)
    ]


async def test_cache_disk_full_fails_clearly_and_the_cache_stays_usable(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    small_cache: Path,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    fill(sftp_server.root, big_mb=24)  # more than the whole cache disk
    pod = await local_pod(client, admin_token, tenant, sftp_files(sftp_server), tmp_path / "repo")

    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "failed", (job, worker.logs()[-3000:])
    assert job["error"]["code"] == "disk_full"
    assert "PODBACKUP_CACHE_DIR" in job["error"]["hint"]
    assert job["attempt"] == 1  # retrying cannot help until someone frees space
    assert leftovers(small_cache) == []  # the partial download was removed
    probe = small_cache / "probe"
    probe.write_bytes(b"x" * 4096)  # still writable, and the space came back
    probe.unlink()
    assert shutil.disk_usage(small_cache).free > 12 << 20

    subprocess.run(
        ["mount", "-o", f"remount,size={LARGER}", str(small_cache)], check=True
    )  # the operator frees space
    await assert_recovered(client, admin_token, tenant, pod["id"], sftp_server.root, tmp_path)
