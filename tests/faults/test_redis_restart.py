"""Redis is only the transport: flushed or restarted while jobs are queued and running,
nothing is lost, nothing runs twice, and the API keeps answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.conftest import Tenant
from tests.faults.helpers import (
    LONG,
    assert_recovered,
    fill,
    local_pod,
    wait_job,
    wait_no_active_jobs,
)
from tests.faults.services import HookGate, PrivateRedis
from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, private_redis: PrivateRedis) -> Settings:
    # Two job slots: both held at the stop hook, so the other pods' jobs stay queued.
    return settings.model_copy(
        update={"redis_url": private_redis.url, "worker_concurrency": 2, "reconcile_seconds": 1}
    )


@pytest.fixture
async def gate() -> AsyncIterator[HookGate]:
    hook = await HookGate().start()
    yield hook
    await hook.close()


async def snapshot_ids(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> list[str]:
    r = await client.get(f"/v1/pods/{pod_id}/snapshots", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return [s["id"] for s in r.json()["items"]]


@pytest.mark.timeout(240)
async def test_redis_flushed_and_restarted_with_jobs_queued_and_running(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    private_redis: PrivateRedis,
    gate: HookGate,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    files = tmp_path / "pod"
    fill(files)
    hooks = {"stop_url": gate.url, "start_url": gate.url}
    pods = [
        await local_pod(
            client, admin_token, tenant, files, tmp_path / f"repo{i}", name=f"p{i}", hooks=hooks
        )
        for i in range(4)
    ]

    async def trigger(pod: dict[str, Any]) -> str:
        r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    # Round 1 — FLUSHALL: two jobs running (held at the stop hook), two queued.
    jobs = [await trigger(p) for p in pods]
    await _wait_running(client, tenant, jobs, 2)
    private_redis.client().flushall()
    gate.open()
    finals = [await wait_job(client, tenant.headers, j, timeout=90) for j in jobs]
    assert [j["status"] for j in finals] == ["succeeded"] * 4, (finals, worker.logs()[-4000:])
    await wait_no_active_jobs(client, admin_token)
    counts = [len(await snapshot_ids(client, tenant, p["id"])) for p in pods]
    assert counts == [1, 1, 1, 1]  # none lost, none twice

    # Then restarts (no persistence: everything it held is gone), each with a backup
    # triggered while Redis is down: the API still answers 202 and the job is kept.
    for round_ in range(2, 5 if LONG else 3):
        gate.close_gate()
        jobs = [await trigger(p) for p in pods[:3]]
        await _wait_running(client, tenant, jobs, 2)
        private_redis.kill()
        r = await client.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "ServiceUnavailable", r.text
        jobs.append(await trigger(pods[3]))
        r = await client.get(f"/v1/jobs/{jobs[-1]}", headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "queued", r.text
        await asyncio.sleep(1.5)  # the worker notices Redis is gone, and stays up
        private_redis.start()
        gate.open()
        finals = [await wait_job(client, tenant.headers, j, timeout=120) for j in jobs]
        assert [j["status"] for j in finals] == ["succeeded"] * 4, (finals, worker.logs()[-4000:])
        await wait_no_active_jobs(client, admin_token)
        counts = [len(await snapshot_ids(client, tenant, p["id"])) for p in pods]
        assert counts == [round_] * 4
        assert (await client.get("/readyz")).status_code == 200
    assert worker.proc is not None
    assert worker.proc.poll() is None  # the same worker process throughout

    await assert_recovered(client, admin_token, tenant, pods[0]["id"], files, tmp_path)


async def _wait_running(
    client: httpx.AsyncClient, tenant: Tenant, jobs: list[str], n: int, timeout: float = 60
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        states = [(await client.get(f"/v1/jobs/{j}", headers=tenant.headers)).json() for j in jobs]
        running = [s for s in states if s["status"] == "running"]
        if len(running) >= n and all(s["progress"].get("phase") == "stopping pod" for s in running):
            assert all(s["status"] in ("running", "queued") for s in states), states
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {n} jobs running: {states}")
