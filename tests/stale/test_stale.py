"""Stale-backup detection with a controlled clock: fires once, clears after a success."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update

from app.config import Settings
from app.models import BackupSettings, PlanState, WebhookDelivery
from app.models.base import utcnow
from app.stale.service import detect
from app.webhooks.delivery import deliver_due
from tests.backups.helpers import backup
from tests.conftest import Tenant
from tests.fixtures.worker import WorkerProcess
from tests.retention.helpers import local_pod
from tests.webhooks.conftest import Receiver, Svc, create_webhook

HOUR = timedelta(hours=1)


async def _schedule_on(app: FastAPI, pod_id: str) -> None:
    """As after a successful verify: enabled schedule (the default), verified settings."""
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(BackupSettings)
            .where(BackupSettings.pod_id == uuid.UUID(pod_id))
            .values(verified_ok=True, verified_at=utcnow())
        )
        await session.commit()


async def _alerted_at(app: FastAPI, pod_id: str) -> object:
    async with app.state.sessionmaker() as session:
        state = await session.get(PlanState, (uuid.UUID(pod_id), "owner"))
        return state.stale_alerted_at if state else None


async def _stale_events(app: FastAPI) -> list[WebhookDelivery]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event == "backup.stale")
        )
        return list(rows)


async def test_stale_fires_once_and_clears_after_a_successful_backup(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    settings: Settings,
    worker: WorkerProcess,
    receiver: Receiver,
    services: Svc,
    tmp_path: Path,
) -> None:
    await create_webhook(client, tenant, receiver.url(), events=["backup.stale"])
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    await _schedule_on(app, pod["id"])
    maker, now = app.state.sessionmaker, utcnow()

    assert (await detect(maker, settings, now)).alerted == 0  # settings are minutes old
    first = await detect(maker, settings, now + 27 * HOUR)  # no backup for 27 h
    assert first.alerted == 1
    assert first.rows_added == 1  # never planned: a plan_states row was added to mark
    assert await _alerted_at(app, pod["id"]) == now + 27 * HOUR
    assert (await detect(maker, settings, now + 28 * HOUR)).alerted == 0  # once, not per tick
    [event] = await _stale_events(app)
    assert event.payload["data"]["pod_id"] == pod["id"]
    assert event.payload["data"]["last_success_at"] is None
    assert event.payload["data"]["threshold_hours"] == 26.0

    await deliver_due(services, utcnow())
    [got] = receiver.requests
    assert json.loads(got.body)["event"] == "backup.stale"

    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert await _alerted_at(app, pod["id"]) is None  # a success clears the alert
    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["stale_alerted_at"] is None
    last_success = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert last_success["last_success_at"]

    after = utcnow()
    assert (await detect(maker, settings, after + 25 * HOUR)).alerted == 0
    assert (await detect(maker, settings, after + 27 * HOUR)).alerted == 1  # a new lapse
    assert len(await _stale_events(app)) == 2


async def test_concurrent_passes_alert_each_pod_once_and_skip_unscheduled(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
) -> None:
    pod_ids: list[str] = []
    for i in range(7):
        r = await client.post(
            "/v1/pods", json={"name": f"p{i}", "app": "a"}, headers=tenant.headers
        )
        pod_ids.append(r.json()["id"])
        r = await client.put(
            f"/v1/pods/{pod_ids[-1]}/backup-settings",
            json={
                "target": {
                    "kind": "s3",
                    "endpoint": "s3.us-west-001.backblazeb2.com",
                    "bucket": f"pod-{i}-backups",
                    "access_key_id": "k",
                    "secret_access_key": "s",
                },
                "schedule": {"enabled": i != 5},  # pod 5: schedule off
            },
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        if i != 6:  # pod 6: never verified
            await _schedule_on(app, pod_ids[-1])
    await create_webhook(client, tenant, "http://127.0.0.1:9/hook", events=["backup.stale"])
    small = settings.model_copy(update={"stale_batch_size": 2})
    at = utcnow() + 30 * HOUR
    results = await asyncio.gather(*(detect(app.state.sessionmaker, small, at) for _ in range(3)))
    assert sum(r.alerted for r in results) == 5
    events = await _stale_events(app)
    assert sorted(e.payload["data"]["pod_id"] for e in events) == sorted(pod_ids[:5])
    async with app.state.sessionmaker() as session:
        marked = await session.scalar(
            select(func.count())
            .select_from(PlanState)
            .where(PlanState.stale_alerted_at.is_not(None))
        )
    assert marked == 5
