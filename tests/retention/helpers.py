"""Builders shared by the retention, checks, storage and stale tests: pods with real
targets, plain restic against a pod's repository (as an owner would use it)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx

from app.integrations.dumps import DbEndpoint
from app.integrations.restic import Repository
from tests.backups.helpers import database_spec, s3_target, sftp_files, wait_job
from tests.conftest import Tenant, auth
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle


def fill(root: Path) -> None:
    (root / "data" / "nested").mkdir(parents=True, exist_ok=True)
    (root / "config.yml").write_text("name: wiki\n")
    (root / "data" / "nested" / "ünïcödé [1].txt").write_text("ü\n")
    (root / "data" / "blob.bin").write_bytes(os.urandom(300_000))


async def s3_pod(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp: SftpServerHandle,
    s3: S3ServerHandle,
    bucket: str,
    db: DbEndpoint | None = None,
) -> dict[str, Any]:
    """A pod with files over SFTP (and a database) backing up into an S3 bucket, with the
    default retention."""
    body: dict[str, Any] = {"name": "wiki", "app": "wikijs", "files": sftp_files(sftp)}
    if db is not None:
        body["database"] = database_spec(db)
    r = await client.post("/v1/pods", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    pod: dict[str, Any] = r.json()
    r = await client.put(
        f"/v1/pods/{pod['id']}/backup-settings",
        json={"target": s3_target(s3, bucket)},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    return pod


async def local_pod(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant, root: Path
) -> dict[str, Any]:
    """A pod with a local folder backing up into a local repository (admin-only kinds)."""
    files = root / "pod"
    files.mkdir(parents=True, exist_ok=True)
    (files / "a.txt").write_text("hello\n")
    (files / "b.bin").write_bytes(os.urandom(50_000))
    r = await client.post(
        "/v1/pods",
        json={
            "name": "local",
            "app": "demo",
            "account_id": str(tenant.account_id),
            "files": {"kind": "local", "path": str(files)},
        },
        headers=auth(admin_token),
    )
    assert r.status_code == 201, r.text
    pod: dict[str, Any] = r.json()
    r = await client.put(
        f"/v1/pods/{pod['id']}/backup-settings",
        json={"target": {"kind": "local", "path": str(root / "repo")}},
        headers=auth(admin_token),
    )
    assert r.status_code == 200, r.text
    return pod


class PlainRestic:
    """The owner's plain restic against a pod's S3 repository (the restore kit's env)."""

    def __init__(self, s3: S3ServerHandle, bucket: str, password: str, tmp: Path) -> None:
        self.env = {
            "PATH": os.environ["PATH"],
            "RESTIC_REPOSITORY": f"s3:{s3.url}/{bucket}",
            "RESTIC_PASSWORD": password,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "RESTIC_CACHE_DIR": str(tmp / "owner-restic-cache"),
            "TZ": "UTC",
        }

    def repository(self) -> Repository:
        """The same repository for the service's own restic wrapper."""
        aws = {k: v for k, v in self.env.items() if k.startswith("AWS_")}
        return Repository(self.env["RESTIC_REPOSITORY"], self.env["RESTIC_PASSWORD"], aws)

    def run(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["restic", *args], env=self.env, cwd=cwd, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def backup(self, folder: Path, *paths: str, host: str, tags: list[str], time: str) -> str:
        """A snapshot made by hand; returns its id as restic's summary names it (0.14: the
        short id; see ``full_ids``)."""
        args = ["backup", "--json", "--host", host, "--time", time]
        for tag in tags:
            args += ["--tag", tag]
        out = self.run(*args, *paths, cwd=folder)
        summary = [json.loads(ln) for ln in out.splitlines() if '"summary"' in ln][-1]
        return str(summary["snapshot_id"])

    def snapshots(self) -> list[dict[str, Any]]:
        return list(json.loads(self.run("snapshots", "--json")) or [])

    def full_ids(self, **named: str) -> dict[str, str]:
        """Full ids of the snapshots named (values: ids as ``backup`` returned them)."""
        listed = [s["id"] for s in self.snapshots()]
        return {k: next(i for i in listed if i.startswith(v)) for k, v in named.items()}


async def kit_password(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> str:
    r = await client.get(f"/v1/pods/{pod_id}/restore-kit", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["password"])


async def refresh(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> dict[str, Any]:
    r = await client.post(f"/v1/pods/{pod_id}/snapshots/refresh", headers=tenant.headers)
    assert r.status_code == 202, r.text
    job = await wait_job(client, tenant.headers, r.json()["id"])
    assert job["status"] == "succeeded", job
    return job


async def run_job(
    client: httpx.AsyncClient, tenant: Tenant, path: str, body: Any = None, timeout: float = 120
) -> dict[str, Any]:
    r = await client.post(path, json=body, headers=tenant.headers)
    assert r.status_code == 202, r.text
    return await wait_job(client, tenant.headers, r.json()["id"], timeout)
