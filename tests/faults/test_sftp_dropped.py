"""The pod's SFTP server drops the connection in the middle of the mirror: the attempt
fails with `connection_lost`, the job is retried and succeeds, and the snapshot holds
the pod's files exactly."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from tests.backups.helpers import sftp_files
from tests.conftest import Tenant
from tests.faults.helpers import (
    assert_recovered,
    backup,
    fill,
    local_pod,
    state_errors,
)
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess


async def test_sftp_connection_dropped_mid_mirror_is_retried(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    fill(sftp_server.root, big_mb=8)
    pod = await local_pod(client, admin_token, tenant, sftp_files(sftp_server), tmp_path / "repo")
    sftp_server.drop_after_bytes = 2 << 20  # one-shot: cut once 2 MiB have been served

    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert sftp_server.drops == 1
    assert job["attempt"] == 2
    errors = await state_errors(app, job["id"])
    assert [e["code"] for e in errors] == ["connection_lost"]
    assert errors[0]["hint"]
    # The retry downloads what the first attempt had not finished, and nothing is stale.
    assert job["result"]["files"]["files_total"] == 5
    await assert_recovered(client, admin_token, tenant, pod["id"], sftp_server.root, tmp_path)
