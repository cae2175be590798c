"""Builders, waits and the end-of-scenario proof shared by the fault scenarios.

Every scenario ends with ``assert_recovered``: no job left queued or running, the next
backup succeeds, ``restic check`` passes on the repository (opened with the restore kit,
as an owner would), and a plain ``restic restore`` of the last good snapshot gives back
the pod's files byte for byte (and the database dump the job recorded, by its sha256).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from app.models import JobEvent
from tests.backups.helpers import backup, wait_job
from tests.conftest import Tenant, auth

__all__ = ["assert_recovered", "backup", "wait_job"]

# `make test-long`: longer storms and more rounds.
LONG = os.environ.get("PODBACKUP_TEST_LONG") == "1"


def fill(root: Path, *, big_mb: int = 0, seed: str = "") -> None:
    """A small pod: text, binary, unicode names, an empty file, a symlink."""
    (root / "data" / "nested").mkdir(parents=True, exist_ok=True)
    (root / "config.yml").write_text(f"name: wiki{seed}\n")
    (root / "data" / "nested" / "ünïcödé.txt").write_text("ü\n")
    (root / "data" / "empty").write_bytes(b"")
    (root / "data" / "blob.bin").write_bytes(os.urandom(200_000))
    if not (root / "link").is_symlink():
        os.symlink("config.yml", root / "link")
    if big_mb:
        with (root / "data" / "big.bin").open("wb") as fh:
            for _ in range(big_mb):
                fh.write(os.urandom(1 << 20))


def tree(root: Path) -> dict[str, Any]:
    """Every entry below ``root``: files by sha256, symlinks by text, folders."""
    found: dict[str, Any] = {}
    for top, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(top) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return found


async def local_pod(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    files: Path | dict[str, Any] | None,
    repo: Path,
    *,
    name: str = "wiki",
    database: dict[str, Any] | None = None,
    hooks: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod of ``tenant`` backed up into a local repository (an admin-only kind, so an
    admin token creates it); ``files`` is a local folder or a ``files`` body (SFTP)."""
    body: dict[str, Any] = {"name": name, "app": "wikijs", "account_id": str(tenant.account_id)}
    if isinstance(files, Path):
        body["files"] = {"kind": "local", "path": str(files)}
    elif files is not None:
        body["files"] = files
    if database is not None:
        body["database"] = database
    if hooks is not None:
        body["hooks"] = hooks
    r = await client.post("/v1/pods", json=body, headers=auth(admin_token))
    assert r.status_code == 201, r.text
    pod: dict[str, Any] = r.json()
    r = await client.put(
        f"/v1/pods/{pod['id']}/backup-settings",
        json={"target": {"kind": "local", "path": str(repo)}},
        headers=auth(admin_token),
    )
    assert r.status_code == 200, r.text
    return pod


async def wait_phase(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    job_id: str,
    prefixes: tuple[str, ...],
    timeout: float = 60,
) -> dict[str, Any]:
    """Wait until the running job reports a phase starting with one of ``prefixes``."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=headers)).json()
        phase = str(job.get("progress", {}).get("phase") or "")
        if job.get("status") == "running" and phase.startswith(prefixes):
            return job
        assert job.get("status") in ("queued", "running"), job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {prefixes}: {job}")


async def state_errors(app: FastAPI, job_id: str) -> list[dict[str, Any]]:
    """The error of every state change the job went through, oldest first."""
    async with app.state.sessionmaker() as session:
        events = (
            await session.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == uuid.UUID(job_id), JobEvent.type == "state")
                .order_by(JobEvent.id)
            )
        ).all()
    return [e.data["error"] for e in events if e.data.get("error")]


async def wait_no_active_jobs(
    client: httpx.AsyncClient, admin_token: str, timeout: float = 60
) -> None:
    """Every job ends: none may stay queued or running (index jobs included)."""
    deadline = time.monotonic() + timeout
    active: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        active = []
        for status in ("queued", "running"):
            r = await client.get(
                "/v1/jobs", params={"status": status, "limit": 200}, headers=auth(admin_token)
            )
            assert r.status_code == 200, r.text
            active += r.json()["items"]
        if not active:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"jobs stuck: {[(j['id'], j['kind'], j['status']) for j in active]}")


def kit_env(kit: dict[str, Any], tmp: Path, s3_secret: str | None = None) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "RESTIC_CACHE_DIR": str(tmp / "rc")}
    env.update(kit["env"])
    if s3_secret is not None:
        env["AWS_SECRET_ACCESS_KEY"] = s3_secret
    return env


async def assert_recovered(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    pod_id: str,
    source: Path | None,
    tmp: Path,
    *,
    s3_secret: str | None = None,
) -> dict[str, Any]:
    """The end of every bad night: nothing stuck, the next backup succeeds, the repository
    checks, and the last good snapshot restores byte-identical. Returns that backup job."""
    await wait_no_active_jobs(client, admin_token)
    job = await backup(client, tenant.headers, pod_id)
    assert job["status"] == "succeeded", job
    await wait_no_active_jobs(client, admin_token)

    r = await client.get(f"/v1/pods/{pod_id}/restore-kit", headers=tenant.headers)
    assert r.status_code == 200, r.text
    work = tmp / f"verify-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    env = kit_env(r.json(), work, s3_secret)
    check = subprocess.run(
        ["restic", "check"], env=env, capture_output=True, text=True, timeout=180
    )
    assert check.returncode == 0, check.stdout + check.stderr
    snapshot = job["result"]["snapshot_id"]
    out = work / "restore"
    done = subprocess.run(
        ["restic", "restore", snapshot, "--target", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if source is not None:
        assert tree(out / "files") == tree(source)
    database = job["result"].get("database")
    if database:
        dumped = (out / database["file"]).read_bytes()
        assert hashlib.sha256(dumped).hexdigest() == database["sha256"]
        assert b"dump complete" in dumped[-4096:]
    return job
