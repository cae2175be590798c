"""The polled reads through the cache with the real listener: an answer is served again
until a row behind it changes anywhere (here: a direct write, as a worker makes), another
account never gets it, and with the listener's connection gone every read goes to the
database until it is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.engine import make_url

from app.config import Settings
from app.models import Job
from app.readcache.cache import ChangeListener, ReadCache, driver_dsn
from app.snapshots import repository as snapshots
from tests.backups.helpers import create_pod
from tests.conftest import Tenant, auth


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"read_cache_seconds": 600.0, "local_roots": [tmp_path]})


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def ready(app: FastAPI) -> ReadCache:
    listener: ChangeListener = app.state.change_listener
    await asyncio.wait_for(listener.connected.wait(), timeout=10)
    cache: ReadCache = app.state.read_cache
    assert cache.enabled
    return cache


async def pod_with_job(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant, tmp_path: Path
) -> tuple[str, str]:
    (tmp_path / "pod").mkdir()
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
        target_headers=auth(admin_token),
    )
    # No worker runs here: the job stays queued until the test moves it, as a worker would.
    r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    assert r.status_code == 202, r.text
    return pod["id"], r.json()["id"]


async def test_served_again_until_a_row_behind_it_changes(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    other_tenant: Tenant,
    tmp_path: Path,
) -> None:
    cache = await ready(app)
    pod_id, job_id = await pod_with_job(client, admin_token, tenant, tmp_path)
    urls = {
        "job": f"/v1/jobs/{job_id}",
        "status": f"/v1/pods/{pod_id}/status",
        "snapshots": f"/v1/pods/{pod_id}/snapshots",
    }
    first: dict[str, Any] = {}
    for name, url in urls.items():
        r = await client.get(url, headers=tenant.headers)
        assert r.status_code == 200, r.text
        first[name] = r.json()
    hits = cache.hits
    for name, url in urls.items():
        r = await client.get(url, headers=tenant.headers)
        assert r.json() == first[name]
    assert cache.hits == hits + 3  # served from the cache
    assert first["job"]["status"] == "queued"
    assert first["status"]["active_job"]["status"] == "queued"
    assert first["snapshots"]["items"] == []

    # Another account: 404 for every cached answer, exactly as without a cache.
    for url in urls.values():
        r = await client.get(url, headers=other_tenant.headers)
        assert r.status_code == 404, r.text

    # A worker moves the job and records a snapshot: the next reads show it.
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job_id))
            .values(status="running", progress={"phase": "uploading", "percent": 42.0})
        )
        await snapshots.upsert(
            session,
            pod_id=uuid.UUID(pod_id),
            plan="owner",
            snap={"id": "ab" * 32, "time": "2026-11-26T10:00:00Z", "paths": ["/files"]},
        )
        await session.commit()

    async def fresh() -> bool:
        job = (await client.get(urls["job"], headers=tenant.headers)).json()
        status = (await client.get(urls["status"], headers=tenant.headers)).json()
        listed = (await client.get(urls["snapshots"], headers=tenant.headers)).json()
        return (
            job["status"] == "running"
            and job["progress"]["percent"] == 42.0
            and status["active_job"]["status"] == "running"
            and [s["id"] for s in listed["items"]] == ["ab" * 32]
        )

    assert await eventually(fresh)  # at once, not after the 600 s the answers may live

    # A pod moved to another account is that account's at once.
    async with app.state.sessionmaker() as session:
        from app.models import Pod

        await session.execute(
            update(Pod)
            .where(Pod.id == uuid.UUID(pod_id))
            .values(account_id=other_tenant.account_id)
        )
        await session.commit()

    async def moved() -> bool:
        r = await client.get(urls["status"], headers=tenant.headers)
        return r.status_code == 404

    assert await eventually(moved)
    r = await client.get(urls["status"], headers=other_tenant.headers)
    assert r.status_code == 200

    metrics = (await client.get("/metrics")).text
    assert "podbackup_read_cache_live 1.0" in metrics
    assert f"podbackup_read_cache_hits {float(cache.hits)}" in metrics


async def test_without_the_listener_every_read_goes_to_the_database(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    settings: Settings,
) -> None:
    cache = await ready(app)
    listener: ChangeListener = app.state.change_listener
    _, job_id = await pod_with_job(client, admin_token, tenant, tmp_path)
    url = f"/v1/jobs/{job_id}"
    await client.get(url, headers=tenant.headers)
    await client.get(url, headers=tenant.headers)
    assert len(cache) >= 1

    # The listening connection is cut (a PostgreSQL restart, a network blip).
    admin = await asyncpg.connect(driver_dsn(settings.database_url))
    try:
        pid = listener.pid
        assert pid is not None
        await admin.execute("SELECT pg_terminate_backend($1)", pid)

        async def off() -> bool:
            return not cache.enabled

        assert await eventually(off)
        assert len(cache) == 0
        # Changes while nobody listens are still seen: reads go to the database.
        await admin.execute("UPDATE jobs SET status = 'running' WHERE id = $1", uuid.UUID(job_id))
        r = await client.get(url, headers=tenant.headers)
        assert r.json()["status"] == "running"
    finally:
        await admin.close()

    # It comes back by itself, and the cache with it.
    async def back() -> bool:
        return cache.enabled and listener.pid not in (None, pid)

    assert await eventually(back, seconds=20)
    await client.get(url, headers=tenant.headers)
    hits = cache.hits
    r = await client.get(url, headers=tenant.headers)
    assert r.json()["status"] == "running"
    assert cache.hits == hits + 1


class Deaf:
    """Stands in for the cache behind the listener: notifications go nowhere."""

    def changed(self, scopes: object) -> None:
        return None

    def reset(self, *, live: bool) -> None:
        return None


async def test_a_write_through_this_process_is_read_back_at_once(
    app: FastAPI, client: httpx.AsyncClient, admin_token: str, tenant: Tenant, tmp_path: Path
) -> None:
    """Without waiting for any notification (none arrives here): the write request's own
    path ids are dropped when it answers."""
    cache = await ready(app)
    listener: ChangeListener = app.state.change_listener
    pod_id, job_id = await pod_with_job(client, admin_token, tenant, tmp_path)
    url = f"/v1/jobs/{job_id}"
    assert (await client.get(url, headers=tenant.headers)).json()["status"] == "queued"
    assert (await client.get(url, headers=tenant.headers)).json()["status"] == "queued"
    real, listener.cache = listener.cache, Deaf()  # type: ignore[assignment]
    try:
        r = await client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
        assert r.status_code in (200, 202), r.text
        assert (await client.get(url, headers=tenant.headers)).json()["status"] == "canceled"
        # the pod's own answers are dropped by a write on the pod
        before = (await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)).json()
        assert before["active_job"] is None or before["active_job"]["status"] == "queued"
        r = await client.post(f"/v1/pods/{pod_id}/backups", headers=tenant.headers)
        assert r.status_code == 202, r.text
        after = (await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)).json()
        assert after["active_job"]["id"] == r.json()["id"]
    finally:
        listener.cache = real
    assert cache.enabled


async def test_a_listener_that_does_not_hear_the_writes_keeps_nothing(
    app: FastAPI, settings: Settings
) -> None:
    """NOTIFY reaches only listeners of the same database (and not through a pooler in
    transaction mode): a listener that hears nothing must never turn the cache on."""
    elsewhere = make_url(settings.database_url).set(database="postgres")
    deaf_cache, good_cache = ReadCache(600.0), ReadCache(600.0)
    deaf = ChangeListener(
        elsewhere.render_as_string(hide_password=False),
        deaf_cache,
        app.state.engine,
        ping_seconds=0.5,
        retry_seconds=0.2,
    )
    good = ChangeListener(settings.database_url, good_cache, app.state.engine, ping_seconds=0.5)
    deaf.start()
    good.start()
    try:
        await asyncio.wait_for(good.connected.wait(), timeout=10)
        assert good_cache.enabled
        await asyncio.sleep(2)  # a few probes' time
        assert not deaf.connected.is_set()
        assert not deaf_cache.enabled
        assert deaf_cache.ticket("pod") is None
    finally:
        await deaf.stop()
        await good.stop()
