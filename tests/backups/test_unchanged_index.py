"""An unchanged backup: one restic start, the browse index copied from its parent in SQL
(restic 0.17+), and everything it records still what restic says."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from app.models import Job, Snapshot, SnapshotFile
from app.snapshots.index import node_row
from tests.backups.helpers import backup, wait_index
from tests.backups.test_local_e2e import local_pod, restic_password
from tests.conftest import Tenant
from tests.fixtures.worker import WorkerProcess


def _restic(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["restic", *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def _restic_index(env: dict[str, str], snap_id: str) -> set[tuple[Any, ...]]:
    """The browse index rows `restic ls --json` gives for the snapshot (pk left out)."""
    rows = set()
    for line in _restic(env, "ls", "--json", snap_id).splitlines():
        node = json.loads(line)
        if node.get("struct_type") == "node" and (row := node_row(0, node)) is not None:
            rows.add(row[1:])
    return rows


async def _stored(app: FastAPI, snap_id: str) -> tuple[Snapshot, set[tuple[Any, ...]]]:
    async with app.state.sessionmaker() as session:
        snap = (await session.scalars(select(Snapshot).where(Snapshot.id == snap_id))).one()
        files = (
            await session.execute(
                select(
                    SnapshotFile.parent,
                    SnapshotFile.name,
                    SnapshotFile.type,
                    SnapshotFile.size,
                    SnapshotFile.mtime,
                    SnapshotFile.mode,
                    SnapshotFile.link_target,
                ).where(SnapshotFile.snapshot_pk == snap.pk)
            )
        ).all()
    return snap, {tuple(r) for r in files}


async def _index_jobs(app: FastAPI, pod_id: str) -> list[Job]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(Job).where(Job.pod_id == uuid.UUID(pod_id), Job.kind == "index")
        )
        return list(rows.all())


async def _jobs_done(app: FastAPI, pod_id: str) -> None:
    """Wait for the pod's follow-up jobs (index, size) to end."""
    for _ in range(600):
        jobs = await _index_jobs(app, pod_id)
        if all(j.status in ("succeeded", "partial", "failed", "canceled") for j in jobs):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the index jobs did not finish")


async def _check_against_restic(
    app: FastAPI, env: dict[str, str], snap_id: str
) -> tuple[Snapshot, set[tuple[Any, ...]]]:
    snap, stored = await _stored(app, snap_id)
    assert snap.index_status == "ready"
    assert stored == _restic_index(env, snap_id)
    assert snap.file_count == len(stored)
    (record,) = json.loads(_restic(env, "snapshots", "--json", snap_id))
    assert snap.tree == record["tree"]
    assert snap.time.isoformat()[:23] == record["time"][:23]  # restic's time, to the ms
    return snap, stored


async def test_unchanged_backup_index_is_what_restic_ls_gives(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    app: FastAPI,
    worker: WorkerProcess,
) -> None:
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    env = {
        "PATH": os.environ["PATH"],
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": await restic_password(client, admin_token, pod["id"]),
        "RESTIC_CACHE_DIR": str(tmp_path / "rc"),
    }
    first = await backup(client, tenant.headers, pod["id"])
    assert first["status"] == "succeeded", (first, worker.logs()[-3000:])
    await wait_index(client, tenant.headers, pod["id"], first["result"]["short_id"])
    _, first_rows = await _check_against_restic(app, env, first["result"]["snapshot_id"])
    await _jobs_done(app, pod["id"])
    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    stats = json.loads(_restic(env, "stats", "--mode", "raw-data", "--json"))
    assert status["repository_size_bytes"] == stats["total_size"]
    index_jobs = len(await _index_jobs(app, pod["id"]))

    again = await backup(client, tenant.headers, pod["id"])
    assert again["status"] == "succeeded", (again, worker.logs()[-3000:])
    assert again["result"]["summary"]["data_added"] == 0, again["result"]["summary"]
    snap_id = again["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], again["result"]["short_id"])
    snap, rows = await _check_against_restic(app, env, snap_id)
    await _jobs_done(app, pod["id"])
    assert rows == first_rows
    assert snap.parent == first["result"]["snapshot_id"]
    if "backup_start" in again["result"]["summary"]:  # restic 0.17+: copied with the backup
        assert len(await _index_jobs(app, pod["id"])) == index_jobs  # no restic ls, no stats
    # Nothing was stored: the size on record is still the repository's.
    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    stats = json.loads(_restic(env, "stats", "--mode", "raw-data", "--json"))
    assert status["repository_size_bytes"] == stats["total_size"]

    # A change no file count shows (a mode; a removed file): the index is restic's again.
    (tmp_path / "pod" / "sub" / "b.bin").chmod(0o600)
    (tmp_path / "pod" / "empty").unlink()
    changed = await backup(client, tenant.headers, pod["id"])
    assert changed["status"] == "succeeded", (changed, worker.logs()[-3000:])
    summary = changed["result"]["summary"]
    assert (summary["files_new"], summary["files_changed"]) == (0, 0)
    await wait_index(client, tenant.headers, pod["id"], changed["result"]["short_id"])
    _, changed_rows = await _check_against_restic(app, env, changed["result"]["snapshot_id"])
    assert changed_rows != rows
    assert ("/files", "empty") not in {r[:2] for r in changed_rows}


async def test_replaced_repository_fails_the_backup_with_the_reason(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    """The backup no longer checks the repository's id before it runs when it has a parent:
    restic loading that parent is the proof. When the target holds another repository, or
    none, the job still fails with what is wrong, and records no snapshot."""
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    password = await restic_password(client, admin_token, pod["id"])
    first = await backup(client, tenant.headers, pod["id"])
    assert first["status"] == "succeeded", (first, worker.logs()[-3000:])
    repo = tmp_path / "repo"
    env = {"PATH": os.environ["PATH"], "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": password}

    # Emptied and initialised again by someone with the same password: another repository.
    subprocess.run(["rm", "-rf", str(repo)], check=True)
    _restic({**env, "RESTIC_CACHE_DIR": str(tmp_path / "rc")}, "init")
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "repository_mismatch", job["error"]
    assert f"not {first['result']['repository_id'][:8]}" in job["error"]["message"]

    # Gone altogether.
    subprocess.run(["rm", "-rf", str(repo)], check=True)
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "repository_mismatch", job["error"]
    assert "is gone" in job["error"]["message"]
    assert not repo.exists()  # not silently replaced by a new one
    snaps = (await client.get(f"/v1/pods/{pod['id']}/snapshots", headers=tenant.headers)).json()
    assert [s["id"] for s in snaps["items"]] == [first["result"]["snapshot_id"]]
