"""The versions of one file across real snapshots: unchanged, changed (same size), deleted
and recreated; each version downloadable and restorable; a snapshot without its index
counted; bad paths and another account's pod."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from app.models import Snapshot
from tests.backups.helpers import restore
from tests.conftest import Tenant
from tests.fixtures.worker import WorkerProcess
from tests.history.helpers import BASE_TIME, local_pod, snapshot, write

V1, V2 = b"version one\n", b"version two\n"  # the same size


async def test_history_of_a_file_over_five_snapshots(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    other_tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    app: FastAPI,
) -> None:
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    root = tmp_path / "pod"
    write(root, "notes/h.txt", V1, BASE_TIME)
    write(root, "other.txt", b"1\n", BASE_TIME)
    s1 = await snapshot(client, tenant, pod["id"])
    write(root, "other.txt", b"2\n", BASE_TIME + 10)  # h.txt unchanged
    s2 = await snapshot(client, tenant, pod["id"])
    write(root, "notes/h.txt", V2, BASE_TIME + 20)
    s3 = await snapshot(client, tenant, pod["id"])
    (root / "notes" / "h.txt").unlink()
    s4 = await snapshot(client, tenant, pod["id"])
    write(root, "notes/h.txt", V1, BASE_TIME)  # recreated: a version of its own
    s5 = await snapshot(client, tenant, pod["id"])
    url = f"/v1/pods/{pod['id']}/files/history"

    r = await client.get(url, params={"path": "/files/notes/h.txt"}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    hist = r.json()
    assert hist["path"] == "/files/notes/h.txt"
    assert (hist["snapshots_scanned"], hist["snapshots_without_path"], hist["not_indexed"]) == (
        5,
        1,
        0,
    )
    spans = [
        (v["last_snapshot"]["id"], v["first_snapshot"]["id"], v["snapshots"])
        for v in hist["versions"]
    ]
    assert spans == [(s5, s5, 1), (s3, s3, 1), (s2, s1, 2)]
    assert all(v["exact"] and v["content_id"] for v in hist["versions"])
    assert len({v["content_id"] for v in hist["versions"]}) == 3
    assert [v["size"] for v in hist["versions"]] == [len(V1)] * 3
    assert hist["versions"][2]["restore"] == {"snapshot_id": s2, "paths": ["/files/notes/h.txt"]}
    assert s4 not in {v["last_snapshot"]["id"] for v in hist["versions"]}

    for version, content in zip(hist["versions"], (V1, V2, V1), strict=True):
        r = await client.get(version["download"], headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert r.content == content

    # A folder has a history too (grouped by size and mtime: folders have no content id).
    r = await client.get(url, params={"path": "files/notes"}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert {v["type"] for v in r.json()["versions"]} == {"dir"}
    assert not any(v["exact"] for v in r.json()["versions"])

    # A snapshot whose index is not ready is counted, not looked into.
    async with app.state.sessionmaker() as session:
        await session.execute(update(Snapshot).where(Snapshot.id == s2).values(index_status="none"))
        await session.commit()
    r = await client.get(url, params={"path": "/files/notes/h.txt"}, headers=tenant.headers)
    hist = r.json()
    assert hist["not_indexed"] == 1
    assert hist["versions"][2]["snapshots"] == 1

    # Restorable by path: version two goes back into the pod.
    body = next(v for v in hist["versions"] if v["last_snapshot"]["id"] == s3)["restore"]
    job = await restore(client, tenant.headers, pod["id"], **body)
    assert job["status"] == "succeeded", job
    assert (root / "notes" / "h.txt").read_bytes() == V2

    r = await client.get(url, params={"path": "/files/notes/nope.txt"}, headers=tenant.headers)
    assert r.status_code == 404
    assert "nope.txt" in r.json()["detail"]
    assert "hint" in r.json()
    r = await client.get(url, params={"path": "/"}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.json()["hint"]
    r = await client.get(url, params={"path": "/files/a\x00b"}, headers=tenant.headers)
    assert r.status_code == 422
    r = await client.get(url, params={"path": "/files/notes/h.txt"}, headers=other_tenant.headers)
    assert r.status_code == 404
    assert r.json()["detail"] == "Pod not found"
