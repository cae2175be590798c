"""The worker is SIGKILLed while pg_dump runs: the dump child dies with it, the job is
taken as lost and retried on another worker, and nothing half-written reaches a snapshot."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.integrations.dumps import DbEndpoint
from tests.backups.helpers import database_spec
from tests.conftest import Tenant
from tests.faults.helpers import (
    assert_recovered,
    fill,
    local_pod,
    state_errors,
    wait_job,
    wait_phase,
)
from tests.fixtures.databases import PgCluster, find_processes, wait_gone
from tests.fixtures.worker import WorkerProcess


async def seed(db: DbEndpoint, rows: int) -> None:
    conn = await asyncpg.connect(
        host=db.host, port=db.port, user=db.username, password=db.password, database=db.name
    )
    try:
        await conn.execute("CREATE TABLE pages (id int primary key, body text)")
        await conn.execute(
            "INSERT INTO pages SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, $1) g",
            rows,
        )
    finally:
        await conn.close()


async def blocked_dumps(cluster: PgCluster, db: DbEndpoint) -> list[Any]:
    """Sessions of our pg_dump waiting for the table lock the test holds."""
    conn = await cluster.connect()
    try:
        return list(
            await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 "
                "AND wait_event_type = 'Lock' AND application_name = 'podbackup'",
                db.name,
            )
        )
    finally:
        await conn.close()


@pytest.mark.timeout(180)
async def test_worker_killed_mid_database_dump(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    pg_cluster: PgCluster,
    pg_pod: DbEndpoint,
    worker: WorkerProcess,
    settings: Settings,
    tmp_path: Path,
) -> None:
    files = tmp_path / "pod"
    fill(files)
    await seed(pg_pod, 20_000)
    pod = await local_pod(
        client, admin_token, tenant, files, tmp_path / "repo", database=database_spec(pg_pod)
    )

    # A transaction holding the table exclusively: pg_dump blocks on its ACCESS SHARE lock,
    # so the worker is reliably killed mid-dump, whatever the machine's speed.
    holder = await pg_cluster.connect(pg_pod.name)
    tx = holder.transaction()
    await tx.start()
    await holder.execute("LOCK TABLE pages IN ACCESS EXCLUSIVE MODE")
    try:
        r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
        job_id = r.json()["id"]
        await wait_phase(client, tenant.headers, job_id, ("database",))
        deadline = time.monotonic() + 30
        while not find_processes(f"dbname='{pg_pod.name}'") or not await blocked_dumps(
            pg_cluster, pg_pod
        ):
            assert time.monotonic() < deadline, worker.logs()[-3000:]
            await asyncio.sleep(0.1)
        worker.kill(signal.SIGKILL)
        # The dump child gets the parent-death signal: no pg_dump outlives its worker.
        assert not wait_gone(f"dbname='{pg_pod.name}'"), "pg_dump outlived its worker"
    finally:
        await tx.rollback()
        await holder.close()

    second = WorkerProcess(settings, tmp_path / "worker2", name="worker2").start()
    try:
        job = await wait_job(client, tenant.headers, job_id, timeout=120)
        assert job["status"] == "succeeded", (job, second.logs()[-3000:])
        assert job["attempt"] == 2
        assert [e["code"] for e in await state_errors(app, job_id)] == ["worker_lost"]
        assert job["result"]["database"]["tables"] == {"public.pages": 20_000}
        await assert_recovered(client, admin_token, tenant, pod["id"], files, tmp_path)
    finally:
        second.stop()
