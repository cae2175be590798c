"""Copy lag: a second copy that cannot be written falls behind; the lag shows in the API,
status and /metrics, stale detection raises `copy.lagging` once, and a successful copy
clears it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from app.config import Settings
from app.models import WebhookDelivery
from app.models.base import utcnow
from app.stale.service import detect
from tests.backups.helpers import backup, wait_job
from tests.conftest import Tenant, auth
from tests.copies.test_copy_e2e import local_pod, wait_kind
from tests.fixtures.worker import WorkerProcess
from tests.webhooks.conftest import Receiver, create_webhook

HOUR = timedelta(hours=1)


def _gauges(text: str) -> dict[str, float]:
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("podbackup_cop")
    }


async def _lagging_events(app: FastAPI) -> list[WebhookDelivery]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event == "copy.lagging")
        )
        return list(rows)


async def test_a_blocked_copy_lags_alerts_once_and_clears(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    settings: Settings,
    worker: WorkerProcess,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    admin, owner = auth(admin_token), auth(tenant.token)
    await create_webhook(client, tenant, receiver.url(), events=["copy.lagging"])
    pod = await local_pod(client, admin, tenant, tmp_path / "pod")
    pod_id = pod["id"]
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"target": {"kind": "local", "path": str(tmp_path / "repo")}},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    # The copy's folder is a file: the copy cannot be created (an unreachable target).
    blocked = tmp_path / "copy"
    blocked.write_text("not a folder")
    r = await client.put(
        f"/v1/pods/{pod_id}/copy-settings",
        json={"target": {"kind": "local", "path": str(blocked)}},
        headers=admin,
    )
    assert r.status_code == 200, r.text

    done = await backup(client, owner, pod_id)
    assert done["status"] == "succeeded", done
    copy_job = await wait_kind(client, owner, pod_id, "copy")
    assert copy_job["status"] == "failed", copy_job

    lag: dict[str, Any] = (await client.get(f"/v1/pods/{pod_id}/copy-lag", headers=owner)).json()
    assert lag["snapshots_behind"] == 1
    assert lag["seconds_behind"] > 0
    assert lag["last_status"] == "failed"
    assert lag["alerted"] is False

    maker, now = app.state.sessionmaker, utcnow()
    assert (await detect(maker, settings, now)).copies_alerted == 0  # minutes behind only
    assert (await detect(maker, settings, now + 27 * HOUR)).copies_alerted == 1
    assert (await detect(maker, settings, now + 28 * HOUR)).copies_alerted == 0  # once
    [event] = await _lagging_events(app)
    data = event.payload["data"]
    assert data["pod_id"] == pod_id
    assert data["plan"] == "copy"
    assert data["snapshots_behind"] == 1
    assert data["threshold_hours"] == 26.0
    assert data["hours_behind"] >= 27

    gauges = _gauges((await client.get("/metrics")).text)
    assert gauges["podbackup_copy_lag_snapshots"] == 1
    assert gauges["podbackup_copy_lag_seconds"] > 0
    assert gauges["podbackup_copies_lagging"] == 1
    status = (await client.get(f"/v1/pods/{pod_id}/status", headers=owner)).json()
    assert status["second_copy"]["snapshots_behind"] == 1
    assert status["second_copy"]["alerted"] is True

    # The target is fixed: a copy on request catches up and clears the alert.
    blocked.unlink()
    r = await client.post(f"/v1/pods/{pod_id}/copies", headers=owner)
    assert r.status_code == 202, r.text
    caught_up = await wait_job(client, owner, r.json()["id"])
    assert caught_up["status"] == "succeeded", caught_up
    lag = (await client.get(f"/v1/pods/{pod_id}/copy-lag", headers=owner)).json()
    assert lag["snapshots_behind"] == 0
    assert lag["alerted"] is False
    assert (await detect(maker, settings, now + 29 * HOUR)).copies_alerted == 0
