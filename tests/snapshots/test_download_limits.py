"""One tenant cannot take every download slot of an API process (a fair share per
account), and a client that stops reading gives its slot back after the idle time.
Over a real socket: only there does a client that stops reading hold the server up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.backups.helpers import backup, wait_index
from tests.conftest import Tenant
from tests.fixtures.worker import WorkerProcess
from tests.snapshots.server import serve
from tests.snapshots.test_download import local_pod

IDLE = 2.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Two slots, one each: the default share is half the slots.
    return settings.model_copy(update={"download_concurrency": 2, "download_idle_seconds": IDLE})


async def _snapshot_url(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    folder: Path,
    worker: WorkerProcess,
    big_mb: int,
) -> str:
    pod = await local_pod(client, admin_token, tenant, folder, big_mb=big_mb)
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    return f"/v1/pods/{pod['id']}/snapshots/{snap}/download"


async def test_one_account_gets_a_fair_share_and_an_idle_client_loses_its_slot(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    other_tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    app: FastAPI,
) -> None:
    mine = await _snapshot_url(client, admin_token, tenant, tmp_path / "a", worker, 40)
    theirs = await _snapshot_url(client, admin_token, other_tenant, tmp_path / "b", worker, 0)
    small = {"path": "/files/data/readme.md"}
    readme = (tmp_path / "b" / "pod" / "data" / "readme.md").read_bytes()

    async with (
        serve(app) as base,
        httpx.AsyncClient(base_url=base, headers=tenant.headers) as a,
        httpx.AsyncClient(base_url=base, headers=other_tenant.headers) as b,
        a.stream("GET", mine, params={"path": "/files/data/big.bin"}) as held,
    ):
        assert held.status_code == 200
        chunks = held.aiter_raw()
        assert await anext(chunks)  # streaming; then this client stops reading
        stalled = time.monotonic()

        # The account holds its share: its next download waits its turn ...
        r = await a.get(mine, params=small)
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "TooManyRequests"
        assert "this account" in r.json()["detail"]
        assert r.headers["retry-after"]
        # ... while another account still gets a slot.
        r = await b.get(theirs, params=small)
        assert r.status_code == 200, r.text
        assert r.content == readme

        # The stalled download is cut off after the idle time: its slot comes back.
        while time.monotonic() - stalled < IDLE + 15:
            r = await a.get(mine, params=small)
            if r.status_code != 429:
                break
            await asyncio.sleep(0.2)
        assert r.status_code == 200, r.text
        assert time.monotonic() - stalled >= IDLE * 0.9
        # The held response was cut, not finished: reading on ends in an error.
        with pytest.raises(httpx.RemoteProtocolError):
            await _drain(chunks)


async def _drain(chunks: object) -> None:
    async for _ in chunks:  # type: ignore[attr-defined]
        pass
