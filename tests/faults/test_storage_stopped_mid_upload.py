"""The S3 server goes away in the middle of the upload and comes back later: the attempt
fails with `storage_unreachable`, the retry succeeds (half-uploaded packs and the dead
attempt's lock do not get in its way), and the repository checks clean."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.backups.test_sftp_s3_e2e import make_pod
from tests.conftest import Tenant
from tests.faults.helpers import assert_recovered, fill, state_errors, wait_job, wait_phase
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A few seconds between attempts, so the storage is back before the retry starts.
    return settings.model_copy(update={"job_max_attempts": 3, "job_retry_base_seconds": 2.0})


@pytest.mark.timeout(240)
async def test_storage_stopped_mid_upload_then_back(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    fill(sftp_server.root, big_mb=48)
    pod = await make_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    job_id = r.json()["id"]
    await wait_phase(client, tenant.headers, job_id, ("uploading",), timeout=90)
    s3_server.stop()
    try:
        while True:  # until the attempt gave up and the job waits for its retry
            job = (await client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)).json()
            if job["status"] != "running" or job["attempt"] > 1:
                break
            await asyncio.sleep(0.1)
    finally:
        s3_server.start()
    job = await wait_job(client, tenant.headers, job_id, timeout=150)
    assert job["status"] == "succeeded", (job, worker.logs()[-4000:])
    assert job["attempt"] >= 2
    errors = await state_errors(app, job_id)
    assert {e["code"] for e in errors} == {"storage_unreachable"}, errors
    await assert_recovered(
        client,
        admin_token,
        tenant,
        pod["id"],
        sftp_server.root,
        tmp_path,
        s3_secret=s3_server.secret_key,
    )
