"""The worker is SIGKILLed while restic uploads: restic dies with it and its lock stays in
the repository. Backups go on beside such a lock, but prune and check need the repository
alone: they remove the lock, which is provably stale (made on this host by a process that
is gone), and succeed instead of failing `repository_locked` forever."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.conftest import Tenant
from tests.faults.helpers import (
    fill,
    local_pod,
    state_errors,
    wait_job,
    wait_no_active_jobs,
    wait_phase,
)
from tests.fixtures.worker import WorkerProcess
from tests.retention.helpers import run_job


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A short lock wait: waiting is no cure for a dead process's lock, removing it is.
    return settings.model_copy(update={"restic_lock_wait_seconds": 3.0})


def locks(repo: Path) -> set[str]:
    return {p.name for p in (repo / "locks").iterdir() if "-tmp-" not in p.name}


def restic_processes(repo: Path, command: bytes | None = None) -> list[int]:
    """Live restic processes on ``repo`` (other tests may run their own), only those
    running ``command`` when given."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RESTIC_REPOSITORY={repo}".encode() in env and (command is None or command in argv):
            found.append(int(entry.name))
    return found


def stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (state T)."""
    states = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            states.add((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return states == {"T"}


def restic_backups(repo: Path) -> list[int]:
    return restic_processes(repo, b"backup")


async def wait_gone(repo: Path, seconds: float = 15.0) -> list[int]:
    """Every restic on ``repo`` has ended (the killed backup, and any other command of
    the worker: those end on the SIGTERM it sends its children as it dies, and remove
    their own locks as they go)."""
    deadline = time.monotonic() + seconds
    while (alive := restic_processes(repo)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return alive


@pytest.mark.timeout(240)
async def test_worker_killed_mid_backup_then_prune_and_check(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    worker: WorkerProcess,
    settings: Settings,
    tmp_path: Path,
) -> None:
    files = tmp_path / "pod"
    fill(files, big_mb=160)
    repo = tmp_path / "repo"
    pod = await local_pod(client, admin_token, tenant, files, repo)
    first = await run_job(client, tenant, f"/v1/pods/{pod['id']}/backups")
    assert first["status"] == "succeeded", first
    # The first snapshot's index job (`restic ls`, `restic stats`) ends first, so no other
    # job's restic is running at the kill below.
    await wait_no_active_jobs(client, admin_token)
    assert not locks(repo)
    (files / "config.yml").write_text("name: changed\n")
    fill(files, big_mb=160, seed="2")  # new content: the second upload takes a while

    r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    job_id = r.json()["id"]
    await wait_phase(client, tenant.headers, job_id, ("uploading",), timeout=90)
    deadline = time.monotonic() + 60
    # A lock while the backup is the only restic on the repository: the backup's own.
    while not (locks(repo) and restic_backups(repo) == restic_processes(repo) != []):
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        await asyncio.sleep(0.05)
    # Killed as with the machine or its container: restic gets no chance to remove its
    # lock (restic 0.16+ removes it on the SIGTERM a dying worker sends its children).
    uploading = restic_backups(repo)
    for pid in uploading:
        os.kill(pid, signal.SIGSTOP)
    # Stopped before the worker dies: its SIGTERM must not reach a restic still running.
    while not all(stopped(pid) for pid in uploading):
        await asyncio.sleep(0.01)
    worker.kill(signal.SIGKILL)
    for pid in uploading:
        os.kill(pid, signal.SIGKILL)
    assert not await wait_gone(repo), "restic outlived its worker"
    # Taken once every restic of the worker has ended: a command the job runs beside the
    # backup (a `cat config`, which takes a read lock) removes its own lock on the
    # SIGTERM the dying worker sends (restic 0.16+), so only the killed backup's counts.
    dead = locks(repo)
    assert dead, "the killed backup left no lock"

    second = WorkerProcess(settings, tmp_path / "worker2", name="worker2").start()
    try:
        job = await wait_job(client, tenant.headers, job_id, timeout=120)
        assert job["status"] == "succeeded", (job, second.logs()[-3000:])
        assert [e["code"] for e in await state_errors(app, job_id)] == ["worker_lost"]
        assert dead <= locks(repo), "the dead backup's lock should still be there"

        r = await client.put(
            f"/v1/pods/{pod['id']}/backup-settings",
            json={"retention": {"keep_last": 1}},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        prune = await run_job(client, tenant, f"/v1/pods/{pod['id']}/prune")
        assert prune["status"] == "succeeded", (prune, second.logs()[-3000:])
        assert prune["attempt"] == 1
        assert first["result"]["snapshot_id"] in prune["result"]["removed_ids"]
        check = await run_job(client, tenant, f"/v1/pods/{pod['id']}/checks")
        assert check["status"] == "succeeded", (check, second.logs()[-3000:])
        assert not dead & locks(repo)
    finally:
        second.stop()
