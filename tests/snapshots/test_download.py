"""Downloads from a snapshot: a file as is, a folder as tar (restic dump), the whole
snapshot, a missing path, and the bound on concurrent downloads (over a real socket)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.backups.helpers import backup, build_pod_tree, create_pod, wait_index
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess
from tests.snapshots.server import serve


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"download_concurrency": 1})


async def local_pod(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant, tmp_path: Path, big_mb: int = 0
) -> dict[str, Any]:
    build_pod_tree(tmp_path / "pod", big_mb=big_mb)
    return await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )


def expected_members(pod_dir: Path, folder: str) -> set[str]:
    """What `restic dump --archive tar` puts in a folder's tar: every entry below the
    folder, named by its path in the snapshot without the leading slash
    (``files/<folder>/…``); the folder itself is not a member."""
    names = set()
    for top, dirs, files in os.walk(pod_dir / folder):
        for name in dirs + files:
            rel = (Path(top) / name).relative_to(pod_dir)
            names.add(f"files/{rel}")
    return names


async def test_download_file_folder_snapshot_and_missing_path(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    pod = await local_pod(client, admin_token, tenant, tmp_path, big_mb=3)
    pod_dir = tmp_path / "pod"
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    url = f"/v1/pods/{pod['id']}/snapshots/{snap}/download"

    for rel in ("data/big.bin", "uploads/2024/März/résumé ünïcödé.txt", "uploads/empty.txt"):
        r = await client.get(url, params={"path": f"/files/{rel}"}, headers=tenant.headers)
        assert r.status_code == 200, r.text
        original = (pod_dir / rel).read_bytes()
        assert r.content == original, rel
        assert r.headers["content-length"] == str(len(original))
        assert r.headers["content-type"] == "application/octet-stream"
        assert "filename*=UTF-8''" in r.headers["content-disposition"]

    r = await client.get(url, params={"path": "/files/app"}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert 'filename="app.tar"' in r.headers["content-disposition"]
    tar = tarfile.open(fileobj=io.BytesIO(r.content))
    assert set(tar.getnames()) == expected_members(pod_dir, "app")
    member = tar.getmember("files/app/secret.key")
    assert member.mode == 0o600
    extracted = tar.extractfile(member)
    assert extracted is not None
    assert extracted.read() == (pod_dir / "app" / "secret.key").read_bytes()
    link = tar.getmember("files/app/settings-link.yml")
    assert link.issym()
    assert link.linkname == "config/settings.yml"

    r = await client.get(url, params={"path": "/"}, headers=tenant.headers)
    assert r.status_code == 200
    names = set(tarfile.open(fileobj=io.BytesIO(r.content)).getnames())
    assert "files/data/big.bin" in names
    assert expected_members(pod_dir, "uploads") <= names

    r = await client.get(url, params={"path": "/files/app/nope.txt"}, headers=tenant.headers)
    assert r.status_code == 404
    assert "/files/app/nope.txt" in r.json()["detail"]


async def test_concurrent_downloads_over_the_limit_get_429(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    app: FastAPI,
) -> None:
    pod = await local_pod(client, admin_token, tenant, tmp_path, big_mb=40)
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    path = f"/v1/pods/{pod['id']}/snapshots/{snap}/download"
    small = {"path": "/files/data/readme.md"}

    async with serve(app) as base, httpx.AsyncClient(base_url=base, headers=tenant.headers) as http:
        async with http.stream("GET", path, params={"path": "/files/data/big.bin"}) as first:
            assert first.status_code == 200
            chunks = first.aiter_raw()
            assert await anext(chunks)  # streaming: the slot is taken
            # 40 MiB do not fit in the socket buffers: the first download is still running
            second = await http.get(path, params=small)
            assert second.status_code == 429, second.text
            assert second.headers["retry-after"] == "5"
            assert second.json()["error"] == "TooManyRequests"
        # The first client went away mid-stream: its slot comes back.
        for _ in range(100):
            again = await http.get(path, params=small)
            if again.status_code != 429:
                break
            await asyncio.sleep(0.1)
        assert again.status_code == 200, again.text
        assert again.content == (tmp_path / "pod" / "data" / "readme.md").read_bytes()

        # A client gone before the body started (the response never began streaming) gives
        # its slot back too; with one slot, a leak would answer 429 from now on.
        for _ in range(3):
            await gone_before_the_body(app, path, small, tenant.headers)
        after = await http.get(path, params=small)
        assert after.status_code == 200, after.text


async def gone_before_the_body(
    app: FastAPI, path: str, params: dict[str, str], headers: dict[str, str]
) -> None:
    """One ASGI request whose client disconnects at once: the server sees the disconnect
    while sending the response's first message, before the body generator ever runs."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(params).encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])
        await asyncio.sleep(0.05)

    with contextlib.suppress(Exception):
        await app(scope, receive, send)
    assert sent  # the request got as far as the response
