"""Platform plan: every pod backed up nightly into the operator's repository, whatever its
owner configured; admins restore from it; account tokens never see it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from app.config import Settings
from app.integrations.dumps import DbEndpoint
from app.main import make_redis
from app.scheduler.service import run_tick
from tests.backups.helpers import wait_job
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess


async def admin_pod(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    root: Path,
    db: DbEndpoint | None = None,
) -> dict[str, Any]:
    (root / "uploads").mkdir(parents=True)
    (root / "uploads" / "photo.jpg").write_bytes(b"\xff\xd8" + root.name.encode() * 1000)
    (root / "config.yml").write_text(f"name: {root.name}\n")
    body: dict[str, Any] = {
        "name": root.name,
        "app": "wikijs",
        "account_id": str(tenant.account_id),
        "files": {"kind": "local", "path": str(root)},
    }
    if db is not None:
        body["database"] = {
            "kind": db.kind,
            "host": db.host,
            "port": db.port,
            "name": db.name,
            "username": db.username,
            "password": db.password,
        }
    r = await client.post("/v1/pods", json=body, headers=auth(admin_token))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def pg(db: DbEndpoint) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=db.host, port=db.port, user=db.username, password=db.password, database=db.name
    )


async def test_platform_fleet_backups_and_admin_restore(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    settings: Settings,
    app: FastAPI,
    worker: WorkerProcess,
    pg_pod: DbEndpoint,
) -> None:
    conn = await pg(pg_pod)
    await conn.execute("CREATE TABLE notes (id int primary key, body text)")
    await conn.execute("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 20) g")
    await conn.close()
    pods = [
        await admin_pod(client, admin_token, tenant, tmp_path / "pod-a", pg_pod),
        await admin_pod(client, admin_token, tenant, tmp_path / "pod-b"),
        await admin_pod(client, admin_token, tenant, tmp_path / "pod-c"),
    ]
    admin = auth(admin_token)
    fleet = (await client.get("/v1/platform/fleet", headers=admin)).json()
    assert fleet["pagination"]["total_count"] == 3  # nobody has a platform backup yet

    # The nightly tick (controlled clock): one platform backup per pod, no owner settings.
    redis = make_redis(settings)
    now = datetime.now(UTC)
    first = await run_tick(app.state.sessionmaker, redis, settings, now, plan="platform")
    assert first.claimed == 0  # planned for tonight's window, not due yet
    tick = await run_tick(
        app.state.sessionmaker, redis, settings, now + timedelta(days=1, hours=7), plan="platform"
    )
    await redis.aclose()
    assert tick.created["backup"] == 3
    for job_id in tick.job_ids:
        job = await wait_job(client, admin, str(job_id), timeout=180)
        assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
        assert job["plan"] == "platform"

    for pod in pods:
        snaps = (
            await client.get(f"/v1/pods/{pod['id']}/snapshots?plan=platform", headers=admin)
        ).json()
        assert snaps["pagination"]["total_count"] == 1
        assert snaps["items"][0]["hostname"] == pod["id"]
        assert "plan:platform" in snaps["items"][0]["tags"]
        status = (
            await client.get(f"/v1/pods/{pod['id']}/status?plan=platform", headers=admin)
        ).json()
        assert status["last_backup"]["status"] == "succeeded"
        assert status["next_run_at"] is not None
    assert (await client.get("/v1/platform/fleet", headers=admin)).json()["items"] == []

    # Owner tokens see none of it.
    pod_a = pods[0]
    mine = tenant.headers
    assert (await client.get(f"/v1/pods/{pod_a['id']}/snapshots", headers=mine)).json()[
        "items"
    ] == []
    for path in (
        f"/v1/pods/{pod_a['id']}/snapshots?plan=platform",
        f"/v1/pods/{pod_a['id']}/status?plan=platform",
        f"/v1/jobs/{tick.job_ids[0]}",
    ):
        assert (await client.get(path, headers=mine)).status_code == 404, path
    assert (await client.get("/v1/jobs", headers=mine)).json()["items"] == []
    assert (await client.get("/v1/platform/fleet", headers=mine)).status_code == 403
    r = await client.post(
        f"/v1/pods/{pod_a['id']}/backups", json={"plan": "platform"}, headers=mine
    )
    assert r.status_code == 403

    # Disaster: a folder and the database are lost; an admin restores them from the platform.
    snap = (
        await client.get(f"/v1/pods/{pod_a['id']}/snapshots?plan=platform", headers=admin)
    ).json()["items"][0]
    original = (tmp_path / "pod-a" / "uploads" / "photo.jpg").read_bytes()
    (tmp_path / "pod-a" / "uploads" / "photo.jpg").unlink()
    conn = await pg(pg_pod)
    await conn.execute("DROP TABLE notes")
    await conn.close()
    r = await client.post(
        f"/v1/pods/{pod_a['id']}/restores",
        headers=admin,
        json={
            "snapshot_id": snap["short_id"],
            "plan": "platform",
            "paths": ["uploads"],
            "safety_backup": False,
        },
    )
    assert r.status_code == 202, r.text
    done = await wait_job(client, admin, r.json()["id"], timeout=120)
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert (tmp_path / "pod-a" / "uploads" / "photo.jpg").read_bytes() == original
    conn = await pg(pg_pod)
    assert await conn.fetchval("SELECT count(*) FROM notes") == 20
    await conn.close()
    r = await client.post(
        f"/v1/pods/{pod_a['id']}/restores",
        headers=mine,
        json={"snapshot_id": snap["short_id"], "plan": "platform"},
    )
    assert r.status_code == 404


def test_platform_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    s = Settings(_env_file=None, platform_password_file=secret)  # type: ignore[call-arg]
    assert s.platform_password_value() == "from-a-file"
    s = Settings(_env_file=None, platform_password=SecretStr("direct"))  # type: ignore[call-arg]
    assert s.platform_password_value() == "direct"
