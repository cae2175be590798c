from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from app.jobs import queue
from app.models import BackupSettings
from tests.conftest import Tenant, auth
from tests.pods.test_pods import create_pod


async def configured_pod(client: httpx.AsyncClient, tenant: Tenant, app: FastAPI) -> dict[str, Any]:
    # Pod names are unique per account: callers make several.
    pod = await create_pod(client, tenant, name=f"pod-{uuid.uuid4().hex[:8]}")
    async with app.state.sessionmaker() as session:
        session.add(
            BackupSettings(
                pod_id=uuid.UUID(pod["id"]),
                target_kind="local",
                target={"path": "/nonexistent"},
                repo_password="v1:x:y",
                schedule={},
                retention={"keep_last": 1},
                verification={},
            )
        )
        await session.commit()
    return pod


async def test_trigger_is_idempotent_and_enqueued(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    pod = await configured_pod(client, tenant, app)
    url = f"/v1/pods/{pod['id']}/backups"
    first, second = await asyncio.gather(
        client.post(url, headers=tenant.headers), client.post(url, headers=tenant.headers)
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    job = first.json()
    assert (job["kind"], job["status"], job["trigger"], job["attempt"]) == (
        "backup",
        "queued",
        "manual",
        1,
    )
    assert first.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert await queue.held(app.state.redis, uuid.UUID(job["id"]))
    history = (await client.get(f"/v1/pods/{pod['id']}/jobs", headers=tenant.headers)).json()
    assert history["pagination"]["total_count"] == 1
    r = await client.post(url, json={"trigger": "api"}, headers=tenant.headers)
    assert r.json()["id"] == job["id"]

    r = await client.post(f"/v1/jobs/{job['id']}/cancel", headers=tenant.headers)
    assert r.status_code == 202
    assert r.json()["status"] == "canceled"
    assert not await queue.held(app.state.redis, uuid.UUID(job["id"]))
    r = await client.post(f"/v1/jobs/{job['id']}/cancel", headers=tenant.headers)
    assert r.status_code == 409
    assert r.json()["error"] == "JobAlreadyFinished"
    r = await client.post(url, json={"trigger": "api"}, headers=tenant.headers)
    assert r.json()["id"] != job["id"]
    assert r.json()["trigger"] == "api"


async def test_trigger_needs_settings(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pod = await create_pod(client, tenant)
    r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    assert r.status_code == 409
    assert "backup-settings" in r.json()["hint"]
    r = await client.post(
        f"/v1/pods/{pod['id']}/backups", json={"trigger": "schedule"}, headers=tenant.headers
    )
    assert r.status_code == 422


async def test_jobs_are_tenant_isolated(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    app: FastAPI,
    admin_token: str,
) -> None:
    pod = await configured_pod(client, tenant, app)
    job = (await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)).json()
    for method, path in [
        ("GET", f"/v1/jobs/{job['id']}"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
        ("GET", f"/v1/jobs/{job['id']}/events"),
        ("GET", f"/v1/pods/{pod['id']}/jobs"),
        ("POST", f"/v1/pods/{pod['id']}/backups"),
        ("GET", f"/v1/pods/{pod['id']}/status"),
    ]:
        r = await client.request(method, path, headers=other_tenant.headers)
        assert r.status_code == 404, (method, path, r.text)
    assert (await client.get("/v1/jobs", headers=other_tenant.headers)).json()["items"] == []
    mine = (await client.get("/v1/jobs", headers=tenant.headers)).json()
    assert [j["id"] for j in mine["items"]] == [job["id"]]
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=auth(admin_token))).status_code == 200
    await client.post(f"/v1/jobs/{job['id']}/cancel", headers=tenant.headers)


async def test_event_stream_of_a_finished_job(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    pod = await configured_pod(client, tenant, app)
    job = (await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)).json()
    await client.post(f"/v1/jobs/{job['id']}/cancel", headers=tenant.headers)
    r = await client.get(f"/v1/jobs/{job['id']}/events", headers=tenant.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "event: state" in r.text
    assert "event: end" in r.text
    assert '"status": "canceled"' in r.text
    # Replaying from the start shows the whole history.
    r = await client.get(
        f"/v1/jobs/{job['id']}/events", headers={**tenant.headers, "Last-Event-ID": "0"}
    )
    assert r.text.count("event: state") >= 3


async def test_status_before_any_backup(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    pod = await configured_pod(client, tenant, app)
    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["configured"] is True
    assert status["last_backup"] is None
    assert status["snapshot_count"] == 0
    r = await client.get(f"/v1/pods/{pod['id']}/status?plan=platform", headers=tenant.headers)
    assert r.status_code == 404


async def test_idempotent_insert_survives_generic_plans(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    """PostgreSQL switches prepared statements to generic plans after five runs; the
    ON CONFLICT on the partial index must still match then."""
    pods = [await configured_pod(client, tenant, app) for _ in range(8)]
    for pod in pods:
        for _ in range(2):
            r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
            assert r.status_code == 202, r.text
    jobs = (await client.get("/v1/jobs?limit=100", headers=tenant.headers)).json()
    assert jobs["pagination"]["total_count"] == 8


async def test_metrics_show_active_jobs_from_postgres(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    pod = await configured_pod(client, tenant, app)
    await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    app.state.db_metrics.min_interval = 0
    text = (await client.get("/metrics")).text
    assert 'podbackup_jobs_active{kind="backup",status="queued"} 1.0' in text


async def test_job_lists_refuse_a_kind_this_version_does_not_list(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Stored rows may hold a newer kind (they load); a request may only name listed kinds."""
    pod = await create_pod(client, tenant)
    for path in ("/v1/jobs", f"/v1/pods/{pod['id']}/jobs"):
        r = await client.get(path, params={"kind": "bogus"}, headers=tenant.headers)
        assert r.status_code == 422, r.text
        assert "unknown job kind 'bogus'" in r.text
        r = await client.get(path, params={"kind": "backup"}, headers=tenant.headers)
        assert r.status_code == 200, r.text
