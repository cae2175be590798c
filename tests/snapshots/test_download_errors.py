"""Downloads that restic cannot serve fail as errors with the envelope and a hint, before
any status line: a repository whose packs were removed, one the password does not open,
one that is gone, and a pod whose backup settings were deleted. Real restic, a real
local repository; the download's log has no traceback."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.backups.helpers import backup, create_pod, wait_index, wait_job
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess
from tests.snapshots.server import serve
from tests.snapshots.test_download import local_pod


async def _snapshot(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant, tmp_path: Path, worker: Any
) -> tuple[str, str]:
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    return pod["id"], f"/v1/pods/{pod['id']}/snapshots/{snap}/download"


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not noisy, [r.getMessage() for r in noisy]


def _assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.headers, r.content[:300])
    body: dict[str, Any] = r.json()
    assert set(body) == {"error", "detail", "hint"}, body
    assert f"({code})" in body["detail"], body
    assert body["hint"]
    return body


async def test_download_from_an_unreadable_repository_is_an_error_not_a_cut_200(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, url = await _snapshot(client, admin_token, tenant, tmp_path, worker)
    repo = tmp_path / "repo"
    saved = tmp_path / "repo-saved"
    shutil.copytree(repo, saved, symlinks=True)
    caplog.set_level(logging.INFO)
    file_ = {"path": "/files/data/readme.md"}
    folder = {"path": "/files/app"}

    # The data packs are gone (a bucket emptied by hand, a lifecycle rule): the
    # repository opens, the index and the browse index still list the file.
    for pack in (repo / "data").rglob("*"):
        if pack.is_file():
            pack.unlink()
    for params in (file_, folder):
        r = await client.get(url, params=params, headers=tenant.headers)
        body = _assert_error(r, 409, "repository_damaged")
        assert body["error"] == "RepositoryUnreadable"

    # Another repository at the same place: the pod's password does not open it.
    shutil.rmtree(repo)
    subprocess.run(
        ["restic", "init", "--repo", str(repo)],
        env={"RESTIC_PASSWORD": "not-the-pods-password", "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    r = await client.get(url, params=file_, headers=tenant.headers)
    assert _assert_error(r, 409, "wrong_password")["error"] == "RepositoryUnreadable"

    # No repository there at all.
    shutil.rmtree(repo)
    repo.mkdir()
    r = await client.get(url, params=folder, headers=tenant.headers)
    _assert_error(r, 409, "repository_not_found")
    _no_tracebacks(caplog)

    # The repository back as it was: downloads work again, slots were all given back.
    shutil.rmtree(repo)
    shutil.copytree(saved, repo, symlinks=True)
    r = await client.get(url, params=file_, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.content == (tmp_path / "pod" / "data" / "readme.md").read_bytes()


async def test_download_after_the_backup_settings_were_deleted_is_409(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pod_id, url = await _snapshot(client, admin_token, tenant, tmp_path, worker)
    r = await client.delete(f"/v1/pods/{pod_id}/backup-settings", headers=tenant.headers)
    assert r.status_code == 204, r.text
    caplog.set_level(logging.INFO)
    r = await client.get(url, params={"path": "/files/data/readme.md"}, headers=tenant.headers)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "NoBackupTarget"
    assert "backup-settings" in body["hint"]
    _no_tracebacks(caplog)
    # The same error in a job: the runner records its code and hint, and does not retry.
    r = await client.post(f"/v1/pods/{pod_id}/snapshots/refresh", headers=tenant.headers)
    assert r.status_code == 202, r.text
    job = await wait_job(client, tenant.headers, r.json()["id"])
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "not_configured", job
    assert "backup-settings" in job["error"]["hint"]
    assert job["attempt"] == 1


async def _drain(r: httpx.Response, sizes: list[int]) -> None:
    async for chunk in r.aiter_raw():
        sizes.append(len(chunk))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_failure_midway_cuts_the_connection_with_one_log_line(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    app: FastAPI,
) -> None:
    """restic fails after the status line (the second file's pack is gone, the first
    streamed fine): the client sees an incomplete transfer, the log one line, no traceback
    (uvicorn's own logger included)."""
    data = tmp_path / "pod" / "data"
    data.mkdir(parents=True)
    (data / "a.bin").write_bytes(os.urandom(3 << 20))
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    first = await backup(client, tenant.headers, pod["id"])
    assert first["status"] == "succeeded", (first, worker.logs()[-3000:])
    packs = {p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()}
    (data / "b.bin").write_bytes(os.urandom(1 << 20))
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    new = {p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()} - packs
    gone = [p for p in new if p.stat().st_size > 512 * 1024]  # b.bin's pack, not the trees'
    assert len(gone) == 1, new
    gone[0].unlink()

    seen = _Records()
    watched = [logging.getLogger(), logging.getLogger("uvicorn.error")]
    for logger in watched:
        logger.addHandler(seen)
    url = f"/v1/pods/{pod['id']}/snapshots/{snap}/download"
    received: list[int] = []
    try:
        async with (
            serve(app) as base,
            httpx.AsyncClient(base_url=base, headers=tenant.headers) as http,
        ):
            r = await http.get(url, params={"path": "/files/data/b.bin"})
            _assert_error(r, 409, "repository_damaged")  # before its first byte: an error
            async with http.stream("GET", url, params={"path": "/files/data"}) as r:
                assert r.status_code == 200
                with pytest.raises(httpx.RemoteProtocolError):
                    await _drain(r, received)
    finally:
        for logger in watched:
            logger.removeHandler(seen)
    assert sum(received) > 3 << 20  # a.bin came through whole; then the cut
    noisy = [r for r in seen.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not noisy, [r.getMessage() for r in noisy]
    midway = [r for r in seen.records if "failed midway" in r.getMessage()]
    assert len(midway) == 1, [r.getMessage() for r in seen.records]
