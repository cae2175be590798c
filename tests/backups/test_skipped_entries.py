"""Nothing skipped silently (issue 13.7) and a private cache (issue 12.7), through a
real worker process, SFTP server, restic and S3 (moto): a symlink the pod's server
will not read makes the backup `partial`, and both the job and the snapshot say which
entry is missing; the worker's cache and the stage in it are 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import asyncssh
import httpx

from app.config import Settings
from tests.backups.helpers import backup, create_pod, s3_target, sftp_files
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import PodSftpServer, start_sftp_server
from tests.fixtures.worker import WorkerProcess


class _ChrootReadlink(PodSftpServer):
    """asyncssh's chrooted readlink: "no such file" for a target outside the chroot."""

    def readlink(self, path: bytes) -> bytes:
        result = asyncssh.SFTPServer.readlink(self, path)
        assert isinstance(result, bytes)
        return result


async def test_an_unreadable_symlink_makes_the_backup_partial_and_is_listed(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    settings: Settings,
    tmp_path: Path,
) -> None:
    root = tmp_path / "pod"
    (root / "data").mkdir(parents=True)
    (root / "data" / "page.txt").write_text("page\n")
    os.symlink("/etc/hostname", root / "data" / "host-link")
    server = await start_sftp_server(root, server_class=_ChrootReadlink)
    try:
        pod = await create_pod(
            client, tenant.headers, files=sftp_files(server), target=s3_target(s3_server, s3_bucket)
        )
        job = await backup(client, tenant.headers, pod["id"])
    finally:
        await server.close()

    assert job["status"] == "partial", job
    result = job["result"]
    assert [u["path"] for u in result["unreadable"]] == ["/data/host-link"]
    assert "symlink" in result["unreadable"][0]["error"]
    assert result["unreadable_count"] == 1
    assert result["files"]["symlinks_skipped"] == 1
    snap = (
        await client.get(
            f"/v1/pods/{pod['id']}/snapshots/{result['snapshot_id']}", headers=tenant.headers
        )
    ).json()
    summary = snap["summary"]
    assert summary["status"] == "partial"
    assert summary["unreadable_count"] == 1
    assert [u["path"] for u in summary["unreadable"]] == ["/data/host-link"]
    assert summary["files"]["symlinks_skipped"] == 1

    # The worker's cache holds this pod's files: nobody but the service's user enters it.
    cache = settings.cache_dir
    pod_cache = cache / "pods" / pod["id"]
    stages = sorted(pod_cache.rglob("stage"))
    assert stages, "no stage in the pod's cache"
    for path in (cache, cache / "pods", pod_cache, *stages, *(s.parent for s in stages)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
