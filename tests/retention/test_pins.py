"""Pinned snapshots against a real S3 repository (moto) and a real worker: the preview says
which snapshots a pin keeps, the prune job forgets exactly the rest (the repository still
holds the pinned one, by plain `restic snapshots`), an unpinned or expired pin protects
nothing any more."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from app.models import Snapshot
from tests.backups.helpers import backup
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.retention.helpers import PlainRestic, fill, kit_password, run_job, s3_pod


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [s["id"] for s in items]


async def _preview(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> dict[str, Any]:
    r = await client.post(f"/v1/pods/{pod_id}/retention/preview", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_pinned_snapshot_survives_prune_until_unpinned_or_expired(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    app: FastAPI,
    tmp_path: Any,
) -> None:
    fill(sftp_server.root)
    pod = await s3_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    pod_id = pod["id"]
    made = []
    for i in range(3):
        (sftp_server.root / "config.yml").write_text(f"name: wiki\nround: {i}\n")
        job = await backup(client, tenant.headers, pod_id)
        assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
        made.append(job["result"]["snapshot_id"])
    oldest, middle, newest = made
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"retention": {"keep_last": 1}},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    snaps = f"/v1/pods/{pod_id}/snapshots"
    r = await client.put(
        f"{snaps}/{oldest}/pin", json={"note": "golden copy"}, headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    # The middle one is pinned too, but its pin has ended: it protects nothing.
    r = await client.put(f"{snaps}/{middle}/pin", json={"days": 1}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Snapshot)
            .where(Snapshot.pod_id == uuid.UUID(pod_id), Snapshot.id == middle)
            .values(pinned_until=datetime.now(UTC) - timedelta(minutes=1))
        )
        await session.commit()

    preview = await _preview(client, tenant, pod_id)
    assert _ids(preview["keep"]) == [newest, oldest]
    assert _ids(preview["remove"]) == [middle]
    assert [(k["id"], k["note"], k["until"]) for k in preview["kept_because_pinned"]] == [
        (oldest, "golden copy", None)
    ]
    kept = {s["id"]: s for s in preview["keep"]}
    assert kept[oldest]["reasons"] == ["pinned until unpinned: golden copy"]
    assert "last snapshot" in kept[newest]["reasons"]

    owner = PlainRestic(s3_server, s3_bucket, await kit_password(client, tenant, pod_id), tmp_path)
    job = await run_job(client, tenant, f"/v1/pods/{pod_id}/prune")
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert job["result"]["removed_ids"] == [middle]
    assert job["result"]["kept_because_pinned"] == [oldest]
    assert {s["id"] for s in owner.snapshots()} == {newest, oldest}
    listed = (await client.get(f"{snaps}?pinned=true", headers=tenant.headers)).json()
    assert _ids(listed["items"]) == [oldest]

    # Unpinned, it is an old snapshot like any other: the next prune forgets it.
    r = await client.delete(f"{snaps}/{oldest}/pin", headers=tenant.headers)
    assert r.status_code == 200, r.text
    preview = await _preview(client, tenant, pod_id)
    assert _ids(preview["remove"]) == [oldest]
    assert preview["kept_because_pinned"] == []
    job = await run_job(client, tenant, f"/v1/pods/{pod_id}/prune")
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert job["result"]["removed_ids"] == [oldest]
    assert {s["id"] for s in owner.snapshots()} == {newest}
