"""The real thing: files over SFTP, a PostgreSQL or MariaDB dump, an S3 bucket (moto),
restic, and a worker process — including the bad nights."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.integrations.dumps import DbEndpoint
from app.models import BackupSettings
from tests.backups.helpers import (
    backup,
    create_pod,
    database_spec,
    s3_target,
    sftp_files,
    wait_index,
    wait_job,
)
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle, start_sftp_server
from tests.fixtures.worker import WorkerProcess


def fill(root: Path, big_mb: int = 0) -> None:
    (root / "data" / "nested").mkdir(parents=True, exist_ok=True)
    (root / "config.yml").write_text("name: wiki\n")
    (root / "data" / "nested" / "ünïcödé.txt").write_text("ü\n")
    (root / "data" / "empty").write_bytes(b"")
    (root / "data" / "blob.bin").write_bytes(os.urandom(300_000))
    if big_mb:
        (root / "data" / "big.bin").write_bytes(os.urandom(big_mb << 20))


async def seed_pg(db: DbEndpoint) -> None:
    conn = await asyncpg.connect(
        host=db.host, port=db.port, user=db.username, password=db.password, database=db.name
    )
    try:
        await conn.execute("CREATE TABLE pages (id int primary key, title text)")
        await conn.execute("INSERT INTO pages SELECT g, 'page ' || g FROM generate_series(1,50) g")
    finally:
        await conn.close()


async def make_pod(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp: SftpServerHandle,
    s3: S3ServerHandle,
    bucket: str,
    db: DbEndpoint | None = None,
) -> dict[str, Any]:
    return await create_pod(
        client,
        tenant.headers,
        files=sftp_files(sftp),
        database=database_spec(db) if db is not None else None,
        target=s3_target(s3, bucket),
    )


def restic_env(s3: S3ServerHandle, bucket: str, password: str, tmp: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "RESTIC_REPOSITORY": f"s3:{s3.url}/{bucket}",
        "RESTIC_PASSWORD": password,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "RESTIC_CACHE_DIR": str(tmp / "rc"),
    }


async def kit_password(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> str:
    kit = (await client.get(f"/v1/pods/{pod_id}/restore-kit", headers=tenant.headers)).json()
    return str(kit["password"])


async def test_sftp_and_postgres_backup_then_unchanged_backup(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    pg_pod: DbEndpoint,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    fill(sftp_server.root)
    await seed_pg(pg_pod)
    pod = await make_pod(client, tenant, sftp_server, s3_server, s3_bucket, pg_pod)

    first = await backup(client, tenant.headers, pod["id"])
    assert first["status"] == "succeeded", (first, worker.logs()[-3000:])
    res = first["result"]
    assert res["files"]["files_total"] == 4
    assert res["files"]["bytes_downloaded"] > 300_000
    assert res["database"]["tables"] == {"public.pages": 50}
    assert res["database"]["file"] == f"database/{pg_pod.name}.sql"

    pinned = (await client.get(f"/v1/pods/{pod['id']}", headers=tenant.headers)).json()
    assert pinned["files"]["host_key"] == sftp_server.host_key_line

    await wait_index(client, tenant.headers, pod["id"], res["snapshot_id"])
    listing = (
        await client.get(
            f"/v1/pods/{pod['id']}/snapshots/{res['snapshot_id']}/files?path=/database",
            headers=tenant.headers,
        )
    ).json()
    assert [e["name"] for e in listing["items"]] == [f"{pg_pod.name}.sql"]
    dump = await client.get(
        f"/v1/pods/{pod['id']}/snapshots/{res['short_id']}/download",
        params={"path": f"/database/{pg_pod.name}.sql"},
        headers=tenant.headers,
    )
    assert b"PostgreSQL database dump complete" in dump.content

    second = await backup(client, tenant.headers, pod["id"])
    assert second["status"] == "succeeded"
    assert second["result"]["files"]["bytes_downloaded"] == 0
    assert second["result"]["files"]["files_downloaded"] == 0
    assert second["result"]["snapshot_id"] != res["snapshot_id"]
    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["snapshot_count"] == 2

    # The restore kit works with plain restic, as the product guide promises.
    env = restic_env(s3_server, s3_bucket, await kit_password(client, tenant, pod["id"]), tmp_path)
    out = subprocess.run(
        ["restic", "snapshots", "--json"], env=env, capture_output=True, text=True, check=True
    )
    assert res["snapshot_id"] in out.stdout


async def test_unreadable_file_makes_partial(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    root = tmp_path / "denied-pod"
    fill(root)
    server = await start_sftp_server(root, deny_read={"data/blob.bin"})
    try:
        pod = await make_pod(client, tenant, server, s3_server, s3_bucket)
        job = await backup(client, tenant.headers, pod["id"])
    finally:
        await server.close()
    assert job["status"] == "partial", job
    assert [u["path"] for u in job["result"]["unreadable"]] == ["/data/blob.bin"]
    assert job["result"]["snapshot_id"]
    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["last_backup"]["status"] == "partial"
    assert status["last_success_at"] is None  # partial is not the night's success


async def test_wrong_repository_password_fails_clearly(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    app: FastAPI,
) -> None:
    fill(sftp_server.root)
    pod = await make_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    assert (await backup(client, tenant.headers, pod["id"]))["status"] == "succeeded"
    async with app.state.sessionmaker() as session:  # the password changed behind our back
        row = await session.get(BackupSettings, uuid.UUID(pod["id"]))
        assert row is not None
        row.repo_password = app.state.keyring.encrypt(
            "not-the-password", f"pod:{pod['id']}:repo_password"
        )
        await session.commit()
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "wrong_password"
    assert job["error"]["hint"]
    assert job["attempt"] == 1  # not retried: retrying cannot help


async def test_a_refused_key_fails_as_access_denied_and_a_new_key_carries_on(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_iam_server: S3ServerHandle,
    s3_iam_bucket: str,
    worker: WorkerProcess,
) -> None:
    """The owner pastes a wrong secret, then deletes the key at the provider: each next
    backup fails at once, says the storage refused the key, and is not retried. Neither may
    read as "the repository is gone" (restic 0.14 prints S3's message, not its code) nor
    stall as an unreachable storage (0.17+ retries them). A new key then backs up into the
    same repository."""
    fill(sftp_server.root)
    owner = f"wiki-owner-{uuid.uuid4().hex[:8]}"
    key, secret = s3_iam_server.create_key(s3_iam_bucket, name=owner)
    target = {**s3_target(s3_iam_server, s3_iam_bucket), "access_key_id": key}

    async def use(secret_access_key: str, access_key_id: str = key) -> None:
        body = {
            "target": {
                **target,
                "access_key_id": access_key_id,
                "secret_access_key": secret_access_key,
            },
            "retention": {"keep_last": 10},
        }
        r = await client.put(
            f"/v1/pods/{pod['id']}/backup-settings", json=body, headers=tenant.headers
        )
        assert r.status_code == 200, r.text

    pod = await create_pod(client, tenant.headers, files=sftp_files(sftp_server))
    await use(secret)
    first = await backup(client, tenant.headers, pod["id"])
    assert first["status"] == "succeeded", first

    typo = secret[:-1] + ("x" if secret[-1] != "x" else "y")
    await use(typo)
    failed = await backup(client, tenant.headers, pod["id"], timeout=60)
    await use(secret)
    s3_iam_server.delete_key(owner, key)
    revoked = await backup(client, tenant.headers, pod["id"], timeout=60)
    for job in (failed, revoked):
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "access_denied", job["error"]
        assert job["error"]["hint"]
        assert job["attempt"] == 1  # not retried: retrying cannot help
        assert secret not in str(job)
        assert typo not in str(job)

    new_key, new_secret = s3_iam_server.create_key(s3_iam_bucket)
    await use(new_secret, new_key)
    again = await backup(client, tenant.headers, pod["id"])
    assert again["status"] == "succeeded", again
    snapshots = (
        await client.get(f"/v1/pods/{pod['id']}/snapshots", headers=tenant.headers)
    ).json()["items"]
    assert len(snapshots) == 2  # the same repository, both snapshots in it


async def test_storage_down_is_retried_then_fails_then_recovers(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
) -> None:
    fill(sftp_server.root)
    pod = await make_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    s3_server.stop()
    try:
        job = await backup(client, tenant.headers, pod["id"], timeout=120)
    finally:
        s3_server.start()
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "storage_unreachable"
    assert job["attempt"] == 2
    again = await backup(client, tenant.headers, pod["id"])
    assert again["status"] == "succeeded"


async def test_cancel_during_upload_then_next_backup_succeeds(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
) -> None:
    fill(sftp_server.root, big_mb=150)
    pod = await make_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    job_id = r.json()["id"]
    await wait_job(client, tenant.headers, job_id, until=("running",))
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)).json()
        if (
            job["progress"].get("phase") in ("uploading", "files: download")
            or job["status"] != "running"
        ):
            break
        await asyncio.sleep(0.1)
    r = await client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
    assert r.status_code == 202
    job = await wait_job(client, tenant.headers, job_id, timeout=60)
    assert job["status"] == "canceled", job
    assert (
        "restic"
        not in subprocess.run(
            ["pgrep", "-af", f"job:{job_id}"], capture_output=True, text=True
        ).stdout
    )
    after = await backup(client, tenant.headers, pod["id"])
    assert after["status"] == "succeeded", (after, worker.logs()[-2000:])


@pytest.mark.timeout(240)
async def test_worker_killed_mid_backup_is_retried_and_repository_checks(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    settings: Any,
    tmp_path: Path,
) -> None:
    fill(sftp_server.root, big_mb=150)
    pod = await make_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    job_id = r.json()["id"]
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)).json()
        if job["progress"].get("phase") == "uploading":
            break
        assert job["status"] in ("queued", "running"), job
        await asyncio.sleep(0.1)
    worker.kill(signal.SIGKILL)
    second = WorkerProcess(settings, tmp_path / "worker2", name="worker2").start()
    try:
        job = await wait_job(client, tenant.headers, job_id, timeout=180)
    finally:
        second.stop()
    assert job["status"] == "succeeded", (job, second.logs()[-3000:])
    assert job["attempt"] == 2
    env = restic_env(s3_server, s3_bucket, await kit_password(client, tenant, pod["id"]), tmp_path)
    check = subprocess.run(["restic", "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
