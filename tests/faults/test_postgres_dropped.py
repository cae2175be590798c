"""PostgreSQL connections dropped (every backend of the service's database terminated)
during API requests and during a job: the API answers 503 in the envelope and recovers by
itself; the job ends truthfully — succeeded, retried or failed with a clear code — and
never stays queued or running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.config import Settings
from tests.conftest import Tenant
from tests.faults.helpers import (
    LONG,
    assert_recovered,
    fill,
    local_pod,
    state_errors,
    wait_job,
    wait_phase,
)
from tests.faults.services import HookGate
from tests.fixtures.database import SERVER
from tests.fixtures.worker import WorkerProcess

# Codes a job may truthfully end with (or have retried) when its database goes away.
DATABASE_CODES = {"database_unavailable", "worker_lost"}


class Terminator:
    """Terminates every backend of one database, again and again, while it runs."""

    def __init__(self, database_url: str) -> None:
        self.database = make_url(database_url).database
        self.terminated = 0

    async def once(self) -> int:
        conn = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.database,
            )
        finally:
            await conn.close()
        self.terminated += len(rows)
        return len(rows)

    @contextlib.asynccontextmanager
    async def storm(self, every: float = 0.1) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await self.once()
                await asyncio.sleep(every)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def assert_envelope_503(r: httpx.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert body["error"] == "ServiceUnavailable", body
    assert body["detail"], body
    assert body["hint"], body
    assert r.headers.get("retry-after")


async def test_api_answers_503_in_the_envelope_and_recovers_alone(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    settings: Settings,
    tmp_path: Path,
) -> None:
    files = tmp_path / "pod"
    fill(files)
    pod = await local_pod(client, admin_token, tenant, files, tmp_path / "repo")
    reads = [
        ("GET", "/v1/pods", None),
        ("GET", f"/v1/pods/{pod['id']}", None),
        ("GET", f"/v1/pods/{pod['id']}/status", None),
        ("GET", f"/v1/pods/{pod['id']}/snapshots", None),
        ("GET", "/v1/jobs", None),
        ("PATCH", f"/v1/pods/{pod['id']}", {"name": "wiki-renamed"}),
        ("GET", f"/v1/pods/{pod['id']}/backup-settings", None),
    ]
    seen: list[httpx.Response] = []
    stop = asyncio.Event()

    async def hammer(i: int) -> None:
        while not stop.is_set():
            verb, path, body = reads[i % len(reads)]
            seen.append(await client.request(verb, path, json=body, headers=tenant.headers))
            i += 1

    terminator = Terminator(settings.database_url)
    async with terminator.storm(every=0.05):
        tasks = [asyncio.create_task(hammer(i)) for i in range(8)]
        await asyncio.sleep(20 if LONG else 3)
        stop.set()
        await asyncio.gather(*tasks)
    assert terminator.terminated > 0
    assert seen
    for r in seen:
        if r.status_code != 200:
            assert_envelope_503(r)
    # The storm's last sweep kills connections idle in the pool, as a PostgreSQL restart
    # would; the next requests must not find them.
    await terminator.once()
    await asyncio.sleep(0.2)
    # Alone, without a restart: the pool replaces the dead connections.
    for verb, path, body in reads:
        r = await client.request(verb, path, json=body, headers=tenant.headers)
        assert r.status_code == 200, r.text
    assert (await client.get("/readyz")).status_code == 200


@pytest.fixture
async def gate() -> AsyncIterator[HookGate]:
    hook = await HookGate().start()
    yield hook
    await hook.close()


@pytest.mark.timeout(180)
async def test_job_ends_truthfully_when_its_database_connections_drop(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    gate: HookGate,
    worker: WorkerProcess,
    settings: Settings,
    tmp_path: Path,
) -> None:
    files = tmp_path / "pod"
    fill(files, big_mb=64)
    pod = await local_pod(
        client,
        admin_token,
        tenant,
        files,
        tmp_path / "repo",
        hooks={"stop_url": gate.url, "start_url": gate.url},
    )
    r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    job_id = r.json()["id"]
    await wait_phase(client, tenant.headers, job_id, ("stopping pod",))
    terminator = Terminator(settings.database_url)
    # Held at the stop hook: the heartbeat's and the repository lock's connections die;
    # then the storm goes on through staging, upload, progress writes and the finish.
    async with terminator.storm(every=0.3):
        await asyncio.sleep(1.5)
        gate.open()
        await asyncio.sleep(12 if LONG else 4)
    assert terminator.terminated > 0
    job = await wait_job(client, tenant.headers, job_id, timeout=120)
    errors = await state_errors(app, job_id)
    assert job["status"] in ("succeeded", "failed"), job
    assert {e["code"] for e in errors} <= DATABASE_CODES, (errors, worker.logs()[-4000:])
    if job["status"] == "failed":
        assert job["error"]["code"] in DATABASE_CODES, job
        assert job["error"]["hint"], job
    await assert_recovered(client, admin_token, tenant, pod["id"], files, tmp_path)
