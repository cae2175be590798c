"""Content ids at index time: carried from the indexed parent through `restic diff`; when
that diff fails the index is still built, without content ids (logged), and the diff
and history endpoints say so instead of guessing."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from app.models import Snapshot, SnapshotFile
from tests.backups.helpers import wait_index
from tests.backups.test_local_e2e import restic_password
from tests.conftest import Tenant
from tests.fixtures.worker import WorkerProcess
from tests.history.helpers import BASE_TIME, local_pod, snapshot, write


async def _ids(app: FastAPI, snap_id: str) -> dict[str, str | None]:
    async with app.state.sessionmaker() as session:
        pk = await session.scalar(select(Snapshot.pk).where(Snapshot.id == snap_id))
        rows = await session.execute(
            select(SnapshotFile.parent, SnapshotFile.name, SnapshotFile.content_id).where(
                SnapshotFile.snapshot_pk == pk, SnapshotFile.type == "file"
            )
        )
        return {f"{p}/{n}": cid for p, n, cid in rows.all()}


async def test_ids_carried_and_a_failed_diff_leaves_them_empty(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    app: FastAPI,
) -> None:
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    root = tmp_path / "pod"
    write(root, "a.txt", b"aaa\n", BASE_TIME)
    write(root, "b.txt", b"bbb\n", BASE_TIME)
    s1 = await snapshot(client, tenant, pod["id"])
    write(root, "b.txt", b"BBB\n", BASE_TIME + 60)
    s2 = await snapshot(client, tenant, pod["id"])

    first, second = await _ids(app, s1), await _ids(app, s2)
    assert all(first.values())
    assert all(second.values())
    assert second["/files/a.txt"] == first["/files/a.txt"]  # unchanged: the parent's id
    assert second["/files/b.txt"] != first["/files/b.txt"]

    # s1 leaves the repository behind the service's back; s2 is indexed again: its
    # `restic diff` against s1 fails, the index does not.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": await restic_password(client, admin_token, pod["id"]),
    }
    for _ in range(60):  # the index job's lock may still be there (exit 11; 1 on 0.14)
        done = subprocess.run(["restic", "forget", s1], env=env, capture_output=True, check=False)
        if b"locked" not in done.stderr:
            break
        await asyncio.sleep(0.5)
    assert done.returncode == 0, done.stderr
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Snapshot).where(Snapshot.id == s2).values(index_status="failed")
        )
        await session.commit()
    url = f"/v1/pods/{pod['id']}/snapshots/{s2}/files"
    r = await client.get(url, headers=tenant.headers)
    assert r.status_code == 409  # indexing requested
    await wait_index(client, tenant.headers, pod["id"], s2)
    assert set((await _ids(app, s2)).values()) == {None}
    assert "restic diff" in worker.logs()

    # The index cannot answer the diff; restic cannot either (s1 is gone): an error.
    r = await client.get(f"/v1/pods/{pod['id']}/snapshots/{s2}/diff", headers=tenant.headers)
    assert r.status_code in (409, 502), r.text
    assert r.json()["hint"]
    r = await client.get(
        f"/v1/pods/{pod['id']}/snapshots/{s2}/diff",
        params={"source": "index"},
        headers=tenant.headers,
    )
    assert r.status_code == 409
    assert r.json()["error"] == "DiffNotIndexed"

    # History: s2's row is used, grouped by size and mtime, and counted.
    r = await client.get(
        f"/v1/pods/{pod['id']}/files/history",
        params={"path": "/files/a.txt"},
        headers=tenant.headers,
    )
    hist = r.json()
    assert (hist["not_indexed"], hist["without_content_id"]) == (1, 1)
    [version] = hist["versions"]
    assert version["snapshots"] == 2
    assert version["exact"] is False
