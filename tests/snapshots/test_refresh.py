"""The snapshot table follows the repository: snapshots made by the owner with plain
restic (restore-kit password) appear after a refresh and are browsable; ones forgotten
with plain restic disappear."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from app.models import Snapshot
from tests.backups.helpers import backup, build_pod_tree, create_pod, wait_index, wait_job
from tests.conftest import Tenant, auth
from tests.faults.helpers import wait_no_active_jobs
from tests.fixtures.worker import WorkerProcess


def plain_restic(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["restic", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def refresh(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> dict[str, Any]:
    r = await client.post(f"/v1/pods/{pod_id}/snapshots/refresh", headers=tenant.headers)
    assert r.status_code == 202, r.text
    job = await wait_job(client, tenant.headers, r.json()["id"])
    assert job["status"] == "succeeded", job
    return job


async def listed(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> list[str]:
    page = (await client.get(f"/v1/pods/{pod_id}/snapshots", headers=tenant.headers)).json()
    return [s["id"] for s in page["items"]]


async def test_refresh_adds_outside_snapshots_and_drops_forgotten_ones(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    build_pod_tree(tmp_path / "pod")
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    ours = (await backup(client, tenant.headers, pod["id"]))["result"]["snapshot_id"]
    kit = (await client.get(f"/v1/pods/{pod['id']}/restore-kit", headers=tenant.headers)).json()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": kit["password"],
        "RESTIC_CACHE_DIR": str(tmp_path / "owner-cache"),
    }
    laptop = tmp_path / "laptop"
    (laptop / "files" / "notes").mkdir(parents=True)
    (laptop / "files" / "notes" / "todo.txt").write_text("by hand\n")
    outside = []
    for i in range(2):
        (laptop / "files" / f"run-{i}.txt").write_text(f"{i}\n")
        out = plain_restic(env, "backup", "--json", "--host", "laptop", "files", cwd=laptop)
        summary = [json.loads(x) for x in out.splitlines() if '"summary"' in x][-1]
        outside.append(summary["snapshot_id"])
    full = {s["short_id"]: s["id"] for s in json.loads(plain_restic(env, "snapshots", "--json"))}
    outside = [full.get(x, x) for x in outside]  # restic 0.14 reports the short id

    job = await refresh(client, tenant, pod["id"])
    assert job["result"] == {"snapshots": 3, "added": 2, "removed": 0}
    assert await listed(client, tenant, pod["id"]) == [outside[1], outside[0], ours]
    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["snapshot_count"] == 3

    # The newest is indexed by the refresh; an older one on first use (files or download).
    await wait_index(client, tenant.headers, pod["id"], outside[1])
    url = f"/v1/pods/{pod['id']}/snapshots/{outside[0]}"
    first = await client.get(f"{url}/download?path=/files/notes/todo.txt", headers=tenant.headers)
    assert first.status_code in (200, 409), first.text
    await wait_index(client, tenant.headers, pod["id"], outside[0])
    got = await client.get(f"{url}/download?path=/files/notes/todo.txt", headers=tenant.headers)
    assert got.status_code == 200, got.text
    assert got.content == b"by hand\n"
    files = (await client.get(f"{url}/files?path=/files", headers=tenant.headers)).json()
    assert [e["name"] for e in files["items"]] == ["notes", "run-0.txt"]

    plain_restic(env, "forget", outside[1])
    job = await refresh(client, tenant, pod["id"])
    assert job["result"] == {"snapshots": 2, "added": 0, "removed": 1}
    assert await listed(client, tenant, pod["id"]) == [outside[0], ours]
    r = await client.get(f"/v1/pods/{pod['id']}/snapshots/{outside[1]}", headers=tenant.headers)
    assert r.status_code == 404
    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["snapshot_count"] == 2


async def test_listing_an_unindexed_snapshot_queues_one_index_job(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    app: FastAPI,
) -> None:
    """Polling a folder of a snapshot that is not indexed yet must not queue an index job
    per request."""
    build_pod_tree(tmp_path / "pod")
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    snap = (await backup(client, tenant.headers, pod["id"]))["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    # The index job goes on to measure the repository after the index is ready: stopping
    # the worker then would leave it `running`, and a running index job is the one a
    # request reuses. Let it end first.
    await wait_no_active_jobs(client, admin_token)
    worker.stop()  # nothing runs the index jobs now: they stay queued
    async with app.state.sessionmaker() as session:
        await session.execute(update(Snapshot).values(index_status="failed"))
        await session.commit()
    for _ in range(5):
        r = await client.get(
            f"/v1/pods/{pod['id']}/snapshots/{snap}/files?path=/", headers=tenant.headers
        )
        assert r.status_code == 409, r.text
        r = await client.get(
            f"/v1/pods/{pod['id']}/snapshots/{snap}/download?path=/files/data/readme.md",
            headers=tenant.headers,
        )
        assert r.status_code == 409, r.text
        assert r.json()["hint"]
        await asyncio.sleep(0.05)
    jobs = (await client.get(f"/v1/pods/{pod['id']}/jobs", headers=tenant.headers)).json()
    index_jobs = [j for j in jobs["items"] if j["kind"] == "index" and j["status"] == "queued"]
    assert len(index_jobs) == 1, index_jobs
