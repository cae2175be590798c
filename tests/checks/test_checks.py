"""Check jobs against a real S3 repository (moto), a real PostgreSQL pod database, the
machine's PostgreSQL as drill server, and a worker process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from app.checks import samples
from app.integrations.dumps import DbEndpoint
from app.integrations.restic import Restic
from app.models import Snapshot
from app.models.base import utcnow
from app.webhooks.delivery import deliver_due
from tests.backups.helpers import backup, wait_index
from tests.conftest import Tenant
from tests.fixtures.databases import PG_SERVER
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.retention.helpers import PlainRestic, fill, kit_password, refresh, run_job, s3_pod
from tests.webhooks.conftest import Receiver, Svc, create_webhook


async def seed_pg(db: DbEndpoint) -> None:
    conn = await asyncpg.connect(
        host=db.host, port=db.port, user=db.username, password=db.password, database=db.name
    )
    try:
        await conn.execute("CREATE TABLE pages (id int primary key, title text)")
        await conn.execute("INSERT INTO pages SELECT g, 'page ' || g FROM generate_series(1,50) g")
    finally:
        await conn.close()


async def drill_databases() -> set[str]:
    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'podbackup_drill_%'"
        )
        return {r["datname"] for r in rows}
    finally:
        await conn.close()


async def check(
    client: httpx.AsyncClient, tenant: Tenant, pod_id: str, body: Any = None
) -> dict[str, Any]:
    return await run_job(client, tenant, f"/v1/pods/{pod_id}/checks", body)


async def test_check_rotates_subsets_and_trial_restores_then_catches_a_truncated_dump(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    pg_pod: DbEndpoint,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    fill(sftp_server.root)
    await seed_pg(pg_pod)
    pod = await s3_pod(client, tenant, sftp_server, s3_server, s3_bucket, pg_pod)
    pod_id = pod["id"]
    done = await backup(client, tenant.headers, pod_id)
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    snap_id = done["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod_id, snap_id)
    drills_before = await drill_databases()

    job = await check(client, tenant, pod_id)
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    res = job["result"]
    assert res["ok"] is True
    assert res["subset"] == "1/12"
    assert res["rotating"] is True
    assert res["check"] == {
        "ok": True,
        "structure_ok": True,
        "read_data_subset": "1/12",
        "errors": [],
    }
    drill = res["trial_restore"]
    assert drill["ok"] is True, drill
    assert drill["snapshot_id"] == snap_id
    assert drill["sha256_ok"] is True
    assert drill["tables"] == {"public.pages": {"expected": 50, "restored": 50, "ok": True}}
    files = res["files"]
    assert files["ok"] is True, files
    assert files["source"] == "index"
    assert files["sampled"] == 3
    sampled = {i["path"]: i for i in files["items"]}
    assert set(sampled) == {
        "/files/config.yml",
        "/files/data/blob.bin",
        "/files/data/nested/ünïcödé [1].txt",
    }
    config = (sftp_server.root / "config.yml").read_bytes()
    assert sampled["/files/config.yml"]["sha256"] == hashlib.sha256(config).hexdigest()
    assert await drill_databases() == drills_before  # the scratch database was dropped

    # Without the index, `restic ls` gives the same deterministic choice.
    restic = await Restic.detect("restic")
    password = await kit_password(client, tenant, pod_id)
    repo = PlainRestic(s3_server, s3_bucket, password, tmp_path).repository()
    async with app.state.sessionmaker() as session:
        row = await session.scalar(select(Snapshot).where(Snapshot.id == snap_id))
        assert row is not None
        indexed = await samples.from_index(session, row, 2, 1 << 20, "7")
    listed = await samples.from_listing(restic, repo, snap_id, 2, 1 << 20, "7")
    assert listed == indexed
    assert len(listed) == 2

    status = (await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)).json()
    verification = status["last_verification"]
    assert verification["ok"] is True
    assert verification["subset"] == "1/12"
    assert verification["job_id"] == job["id"]
    assert "repository ok" in verification["summary"]

    # The rotation moves on; an explicit subset is read as given and does not move it.
    second = await check(client, tenant, pod_id, {"trial_restore": False})
    assert second["status"] == "succeeded", second
    assert second["result"]["subset"] == "2/12"
    assert second["result"]["trial_restore"] == {"ok": None, "skipped": "not requested"}
    given = await check(client, tenant, pod_id, {"read_data_subset": "1/1", "trial_restore": False})
    assert given["result"]["subset"] == "1/1"
    assert given["result"]["rotating"] is False
    third = await check(client, tenant, pod_id, {"trial_restore": False})
    assert third["result"]["subset"] == "3/12"

    # A snapshot whose dump was cut short (made by hand, recorded like a backup): the trial
    # restore fails and says why, and the repository itself is fine.
    dump = await client.get(
        f"/v1/pods/{pod_id}/snapshots/{snap_id}/download",
        params={"path": f"/database/{pg_pod.name}.sql"},
        headers=tenant.headers,
    )
    assert dump.status_code == 200
    stage = tmp_path / "cut"
    (stage / "database").mkdir(parents=True)
    shutil.copytree(sftp_server.root, stage / "files")
    (stage / "database" / f"{pg_pod.name}.sql").write_bytes(dump.content[: len(dump.content) // 2])
    owner = PlainRestic(s3_server, s3_bucket, await kit_password(client, tenant, pod_id), tmp_path)
    short = owner.backup(
        stage, "files", "database", host=pod_id, tags=[f"pod:{pod_id}"], time=time_now()
    )
    cut_id = owner.full_ids(cut=short)["cut"]
    await refresh(client, tenant, pod_id)
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Snapshot)
            .where(Snapshot.pod_id == uuid.UUID(pod_id), Snapshot.id == cut_id)
            .values(summary={"status": "succeeded", "database": done["result"]["database"]})
        )
        await session.commit()

    failed = await check(client, tenant, pod_id)
    assert failed["status"] == "failed", (failed, worker.logs()[-3000:])
    assert failed["error"]["code"] == "check_failed"
    assert "trial restore failed" in failed["error"]["message"]
    assert failed["error"]["hint"]
    res = failed["result"]
    assert res["ok"] is False
    assert res["check"]["ok"] is True
    assert res["trial_restore"]["ok"] is False
    assert res["trial_restore"]["snapshot_id"] == cut_id
    assert res["trial_restore"]["sha256_ok"] is False
    assert any("completion footer" in p for p in res["trial_restore"]["problems"])
    assert res["files"]["ok"] is True
    assert res["files"]["snapshot_id"] == cut_id
    status = (await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)).json()
    assert status["last_verification"]["ok"] is False
    assert status["last_verification"]["code"] == "check_failed"


def time_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def _signed(secret: str, headers: dict[str, str], body: bytes) -> bool:
    stamp = headers["x-podbackup-timestamp"]
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-podbackup-signature"], f"sha256={mac}")


async def test_a_deleted_pack_fails_the_check_and_a_signed_webhook_arrives(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    receiver: Receiver,
    services: Svc,
    tmp_path: Path,
) -> None:
    hook = await create_webhook(client, tenant, receiver.url(), events=["check.failed"])
    fill(sftp_server.root)
    pod = await s3_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    pod_id = pod["id"]
    done = await backup(client, tenant.headers, pod_id)
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    owner = PlainRestic(s3_server, s3_bucket, await kit_password(client, tenant, pod_id), tmp_path)
    kinds = pack_kinds(owner)
    data_pack = next(p for p, k in kinds.items() if k == {"data"})
    tree_pack = next(p for p, k in kinds.items() if k == {"tree"})
    s3_server.client().delete_object(Bucket=s3_bucket, Key=f"data/{data_pack[:2]}/{data_pack}")

    job = await check(client, tenant, pod_id)
    assert job["status"] == "failed", (job, worker.logs()[-3000:])
    assert job["error"]["code"] == "repository_damaged"
    assert "repair" in job["error"]["hint"]
    assert job["attempt"] == 1  # not retried: retrying cannot bring the pack back
    assert job["result"]["ok"] is False
    assert job["result"]["check"]["structure_ok"] is False
    assert any(data_pack in e for e in job["result"]["check"]["errors"])
    status = (await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)).json()
    assert status["last_verification"]["ok"] is False
    assert status["last_verification"]["code"] == "repository_damaged"

    deadline = time.monotonic() + 30
    while not receiver.requests and time.monotonic() < deadline:
        await deliver_due(services, utcnow())
        await asyncio.sleep(0.2)
    [got] = receiver.requests
    assert _signed(hook["secret"], got.headers, got.body)
    body = json.loads(got.body)
    assert body["event"] == "check.failed"
    assert body["data"]["job_id"] == job["id"]
    assert body["data"]["pod_id"] == pod_id
    assert body["data"]["error"]["code"] == "repository_damaged"

    # A pack of trees gone too: restic 0.14 keeps retrying it (reads as a stalled storage),
    # but the storage answers, so it is reported as damage, not as an outage to retry.
    s3_server.client().delete_object(Bucket=s3_bucket, Key=f"data/{tree_pack[:2]}/{tree_pack}")
    again = await check(client, tenant, pod_id)
    assert again["status"] == "failed", (again, worker.logs()[-3000:])
    assert again["error"]["code"] == "repository_damaged"
    assert again["attempt"] == 1
    errors = " ".join(again["result"]["check"]["errors"])
    assert tree_pack in errors or "kept retrying" in errors  # 0.17+ / 0.14


def pack_kinds(owner: PlainRestic) -> dict[str, set[str]]:
    """Pack id -> the kinds of blobs it holds, from the repository's index."""
    kinds: dict[str, set[str]] = {}
    for index_id in owner.run("list", "index").split():
        for pack in json.loads(owner.run("cat", "index", index_id))["packs"]:
            kinds[pack["id"]] = {b["type"] for b in pack["blobs"]}
    return kinds


async def test_check_request_validation(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=tenant.headers)
    pod_id = r.json()["id"]
    r = await client.post(f"/v1/pods/{pod_id}/checks", headers=tenant.headers)
    assert r.status_code == 409
    assert r.json()["error"] == "NotConfigured"
    for bad in ("0/3", "4/3", "x", "150%", "1/0"):
        r = await client.post(
            f"/v1/pods/{pod_id}/checks", json={"read_data_subset": bad}, headers=tenant.headers
        )
        assert r.status_code == 422, (bad, r.text)
