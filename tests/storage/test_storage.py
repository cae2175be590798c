"""Repository size after a backup (real restic, real worker), growth and cost estimates."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.config import Settings
from app.models import BackupSettings, RepoSizeSample
from app.models.base import utcnow
from app.storage import prices
from app.storage.service import record_size
from tests.backups.helpers import backup
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.retention.helpers import local_pod

TB = 10**12


async def measured_size(
    client: httpx.AsyncClient, tenant: Tenant, pod_id: str, backup_job: dict[str, Any]
) -> int:
    """The size is measured by the index job that follows each backup."""
    snapshot_id = backup_job["result"]["snapshot_id"]
    for _ in range(300):
        jobs = (
            await client.get(f"/v1/pods/{pod_id}/jobs?kind=index", headers=tenant.headers)
        ).json()["items"]
        mine = [j for j in jobs if j["params"].get("snapshot_id") == snapshot_id]
        if mine and mine[0]["status"] in ("succeeded", "failed"):
            assert mine[0]["status"] == "succeeded", mine[0]
            return int(mine[0]["result"]["repository_size_bytes"])
        await asyncio.sleep(0.2)
    raise AssertionError("no index job measured the repository")


async def test_size_is_recorded_after_a_backup(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    size = await measured_size(client, tenant, pod["id"], job)
    assert 50_000 < size < 200_000  # the pod's ~50 kB of random data, compressed: not less

    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["repository_size_bytes"] == size
    assert status["repository_size_at"]
    assert status["repository_growth_30d"] is None  # one sample: no growth yet
    assert status["cost_estimate"]["provider"] == "local"
    assert status["cost_estimate"]["monthly_usd"] is None

    stats = (await client.get(f"/v1/pods/{pod['id']}/stats", headers=tenant.headers)).json()
    assert [s["size_bytes"] for s in stats["samples"]] == [size]
    assert stats["repository_size_bytes"] == size
    assert stats["snapshot_count"] == 1

    # A backup that stores data is measured again.
    (tmp_path / "pod" / "c.bin").write_bytes(os.urandom(30_000))
    second = await backup(client, tenant.headers, pod["id"])
    assert second["result"]["summary"]["data_added"] > 0
    second_size = await measured_size(client, tenant, pod["id"], second)
    stats = (await client.get(f"/v1/pods/{pod['id']}/stats", headers=tenant.headers)).json()
    assert [s["size_bytes"] for s in stats["samples"]] == [size, second_size]
    assert second_size > size
    assert stats["growth_30d"] is None  # two samples minutes apart: no daily rate yet

    # One that stores nothing leaves the size as measured (within a day): no `restic stats`.
    third = await backup(client, tenant.headers, pod["id"])
    assert third["result"]["summary"]["data_added"] == 0
    await _follow_ups_done(client, tenant, pod["id"])
    index_jobs = (
        await client.get(f"/v1/pods/{pod['id']}/jobs?kind=index", headers=tenant.headers)
    ).json()["items"]
    third_id = third["result"]["snapshot_id"]
    for j in index_jobs:  # restic 0.14: an index job (`restic ls`); 0.17+: none
        if j["params"].get("snapshot_id") == third_id:
            assert "repository_size_bytes" not in (j["result"] or {}), j
    stats = (await client.get(f"/v1/pods/{pod['id']}/stats", headers=tenant.headers)).json()
    assert [s["size_bytes"] for s in stats["samples"]] == [size, second_size]
    assert stats["repository_size_bytes"] == second_size


async def _follow_ups_done(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> None:
    for _ in range(300):
        jobs = (await client.get(f"/v1/pods/{pod_id}/jobs", headers=tenant.headers)).json()
        if all(j["status"] not in ("queued", "running") for j in jobs["items"]):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the backup's follow-up jobs did not end")


async def test_growth_and_cost_from_samples(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    s3_server: S3ServerHandle,
) -> None:
    r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=tenant.headers)
    pod_id = uuid.UUID(r.json()["id"])
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={
            "target": {
                "kind": "s3",
                "endpoint": s3_server.url,
                "bucket": "costs",
                "access_key_id": "k",
                "secret_access_key": "s",
            }
        },
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    now = utcnow()
    async with app.state.sessionmaker() as session:
        row = await session.get(BackupSettings, pod_id)
        assert row is not None
        row.target = row.target.model_copy(update={"provider": "aws"})  # as if at AWS
        for days, size in ((500, TB // 2), (40, 1 * TB), (10, TB + TB // 2), (0, 3 * TB)):
            await record_size(
                session, pod_id, "owner", size, settings, at=now - timedelta(days=days)
            )
        await session.commit()
        kept = await session.scalar(
            select(func.count()).select_from(RepoSizeSample).where(RepoSizeSample.pod_id == pod_id)
        )
    assert kept == 3  # the 500-day-old sample fell out of the history

    stats = (await client.get(f"/v1/pods/{pod_id}/stats", headers=tenant.headers)).json()
    assert stats["provider"] == "aws"
    assert stats["repository_size_bytes"] == 3 * TB
    assert [s["size_bytes"] for s in stats["samples"]] == [TB, TB + TB // 2, 3 * TB]
    growth = stats["growth_30d"]
    assert growth["bytes"] == 2 * TB  # now vs the newest sample at least 30 days old
    assert growth["days"] == pytest.approx(40, abs=0.01)
    assert stats["cost_estimate"]["usd_per_tb_month"] == 23.0
    assert stats["cost_estimate"]["monthly_usd"] == pytest.approx(69.0)
    short = (await client.get(f"/v1/pods/{pod_id}/stats?days=20", headers=tenant.headers)).json()
    assert len(short["samples"]) == 2

    status = (await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)).json()
    assert status["cost_estimate"] == stats["cost_estimate"]
    assert status["repository_growth_30d"] == growth


def test_price_table() -> None:
    assert prices.estimate("b2", 5 * 10**9).monthly_usd == 0.0  # within the free 10 GB
    assert prices.estimate("b2", 2 * TB + 10 * 10**9).monthly_usd == pytest.approx(12.0)
    assert prices.estimate("idrive_e2", 2 * TB).monthly_usd == pytest.approx(9.0)
    assert prices.estimate("oci", TB).monthly_usd == pytest.approx(25.5)
    unknown = prices.estimate("generic", TB)
    assert unknown.monthly_usd is None
    assert unknown.usd_per_tb_month is None
    assert unknown.note
