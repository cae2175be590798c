"""Targets watched between runs, on real parts: the IAM-enforcing S3 server, local folders,
a TCP listener that counts connections, webhooks delivered to a real receiver, the worker
for real backups, and the scheduler's cursors with a controlled clock."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from app.config import Settings
from app.kit.crypto import Keyring
from app.models import Account, BackupSettings, PlanState, Pod, WebhookDelivery
from app.models.base import utcnow
from app.scheduler.service import plan_all
from app.watch.service import watch
from app.webhooks.delivery import deliver_due
from tests.backups.helpers import backup
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.retention.helpers import local_pod
from tests.webhooks.conftest import Receiver, Svc, create_webhook
from workers.tasks.watch import watch_targets

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
EVENTS = ["target.unavailable", "target.recovered"]


async def _schedule_on(app: FastAPI, pod_id: str, repository_id: str | None = None) -> None:
    """As after a successful verify (and, with ``repository_id``, a first backup)."""
    values: dict[str, Any] = {"verified_ok": True, "verified_at": utcnow()}
    if repository_id is not None:
        values["repository_id"] = repository_id
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(BackupSettings).where(BackupSettings.pod_id == uuid.UUID(pod_id)).values(values)
        )
        await session.commit()


async def _s3_pod(
    client: httpx.AsyncClient, tenant: Tenant, target: dict[str, Any], name: str = "wiki"
) -> str:
    r = await client.post("/v1/pods", json={"name": name, "app": "wikijs"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    pod_id = str(r.json()["id"])
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings", json={"target": target}, headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    return pod_id


def _iam_target(s3: S3ServerHandle, bucket: str, key: str, secret: str) -> dict[str, Any]:
    return {
        "kind": "s3",
        "endpoint": s3.url,
        "bucket": bucket,
        "access_key_id": key,
        "secret_access_key": secret,
    }


async def _status(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _events(app: FastAPI, event: str) -> list[WebhookDelivery]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.event == event)
            .order_by(WebhookDelivery.created_at)
        )
        return list(rows)


async def _gauge(app: FastAPI, client: httpx.AsyncClient) -> float:
    app.state.db_metrics.min_interval = 0  # read PostgreSQL on every scrape
    text = (await client.get("/metrics")).text
    found = re.search(r'^podbackup_targets_unavailable\{plan="owner"\} (\S+)$', text, re.M)
    assert found, "the gauge is exported"
    return float(found.group(1))


def _keyring(settings: Settings) -> Keyring:
    return Keyring.from_settings(settings.secret_keys)


async def test_a_deleted_bucket_is_unavailable_once_then_recovered(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    receiver: Receiver,
    services: Svc,
    s3_iam_server: S3ServerHandle,
) -> None:
    s3 = s3_iam_server
    bucket = s3.create_bucket()
    key, secret = s3.create_key(bucket)
    s3.client().put_object(Bucket=bucket, Key="config", Body=b"restic config")
    await create_webhook(client, tenant, receiver.url(), events=EVENTS)
    pod_id = await _s3_pod(client, tenant, _iam_target(s3, bucket, key, secret))
    await _schedule_on(app, pod_id, repository_id="0" * 64)
    maker, keyring, now = app.state.sessionmaker, _keyring(settings), utcnow()

    first = await watch(maker, settings, keyring, now)
    assert (first.probed, first.unavailable, first.rows_added) == (1, 0, 1)
    target = (await _status(client, tenant, pod_id))["target"]
    assert target["state"] == "available"
    assert target["code"] is None
    assert target["checked_at"] is not None
    assert await _gauge(app, client) == 0
    assert (await watch(maker, settings, keyring, now + HOUR)).probed == 0  # not due yet

    s3.empty_bucket(bucket)
    s3.client().delete_bucket(Bucket=bucket)
    second = await watch(maker, settings, keyring, now + 7 * HOUR)
    assert (second.probed, second.went_unavailable) == (1, 1)
    status = await _status(client, tenant, pod_id)
    target = status["target"]
    assert target["state"] == "unavailable"
    assert target["code"] == "bucket_unavailable"
    assert bucket in target["reason"]
    assert "does not exist" in target["reason"]
    assert target["hint"]
    assert secret not in json.dumps(status)
    assert await _gauge(app, client) == 1

    # Probed again an hour later (an unavailable target is watched closely): no new webhook.
    third = await watch(maker, settings, keyring, now + 8 * HOUR + MINUTE)
    assert (third.probed, third.unavailable, third.went_unavailable) == (1, 1, 0)
    [event] = await _events(app, "target.unavailable")
    assert event.payload["data"]["pod_id"] == pod_id
    assert event.payload["data"]["code"] == "bucket_unavailable"
    await deliver_due(services, utcnow())
    [got] = receiver.requests
    body = json.loads(got.body)
    assert body["event"] == "target.unavailable"
    assert body["data"]["hint"] == target["hint"]
    assert secret not in got.body.decode()

    s3.create_bucket(bucket)  # the owner puts it back (from the provider's trash)
    s3.client().put_object(Bucket=bucket, Key="config", Body=b"restic config")
    fourth = await watch(maker, settings, keyring, now + 9 * HOUR + 2 * MINUTE)
    assert (fourth.probed, fourth.recovered) == (1, 1)
    target = (await _status(client, tenant, pod_id))["target"]
    assert target["state"] == "available"
    assert target["reason"] is None
    assert await _gauge(app, client) == 0
    [recovered] = await _events(app, "target.recovered")
    assert recovered.payload["data"]["by"] == "probe"
    assert recovered.payload["data"]["unavailable_since"] is not None
    await deliver_due(services, utcnow())
    assert [json.loads(r.body)["event"] for r in receiver.requests] == EVENTS


async def test_a_revoked_key_and_a_vanished_config_are_told_apart(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    s3_iam_server: S3ServerHandle,
) -> None:
    s3 = s3_iam_server
    revoked_bucket, emptied_bucket = s3.create_bucket(), s3.create_bucket()
    user = f"pod-{uuid.uuid4().hex[:8]}"
    key, secret = s3.create_key(revoked_bucket, name=user)
    key2, secret2 = s3.create_key(emptied_bucket)
    for b in (revoked_bucket, emptied_bucket):
        s3.client().put_object(Bucket=b, Key="config", Body=b"restic config")
    revoked = await _s3_pod(client, tenant, _iam_target(s3, revoked_bucket, key, secret), "a")
    emptied = await _s3_pod(client, tenant, _iam_target(s3, emptied_bucket, key2, secret2), "b")
    for pod_id in (revoked, emptied):
        await _schedule_on(app, pod_id, repository_id="0" * 64)
    maker, keyring, now = app.state.sessionmaker, _keyring(settings), utcnow()
    assert (await watch(maker, settings, keyring, now)).unavailable == 0

    s3.delete_key(user, key)
    s3.client().delete_object(Bucket=emptied_bucket, Key="config")
    result = await watch(maker, settings, keyring, now + 7 * HOUR)
    assert (result.probed, result.went_unavailable) == (2, 2)
    target = (await _status(client, tenant, revoked))["target"]
    assert target["code"] == "credentials_rejected"
    assert key in target["reason"]  # the key id is the owner's to see; the secret never
    assert "replaced by a new one" in target["hint"]
    target = (await _status(client, tenant, emptied))["target"]
    assert target["code"] == "repository_missing"
    assert "'config'" in target["reason"]
    assert await _gauge(app, client) == 2


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts and closes them."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0

    async def _handle(self, _r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener()
    server = await asyncio.start_server(found._handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    yield found
    server.close()


async def test_an_endpoint_now_refused_is_unavailable_without_a_connection(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    listener: Listener,
) -> None:
    target = {
        "kind": "s3",
        "endpoint": f"http://127.0.0.1:{listener.port}",
        "bucket": "pod-refused-1",
        "access_key_id": "AKIAWATCHEXAMPLE",
        "secret_access_key": "never-in-a-reason-or-a-log",
    }
    pod_id = await _s3_pod(client, tenant, target)  # allowed when saved
    await _schedule_on(app, pod_id, repository_id="0" * 64)
    maker, keyring, now = app.state.sessionmaker, _keyring(settings), utcnow()

    narrowed = settings.model_copy(update={"allow_networks": []})  # loopback now refused
    result = await watch(maker, narrowed, keyring, now)
    assert (result.probed, result.went_unavailable) == (1, 1)
    shown = (await _status(client, tenant, pod_id))["target"]
    assert shown["state"] == "unavailable"
    assert shown["code"] == "address_refused"
    assert listener.accepted == 0

    # The same probe under the saved policy does connect (the count above can tell).
    again = await watch(maker, settings, keyring, now + 2 * HOUR)
    assert again.probed == 1
    assert listener.accepted >= 1
    shown = (await _status(client, tenant, pod_id))["target"]
    assert shown["code"] == "unreachable"


async def test_a_local_repository_whose_config_vanished_then_a_backup_recovers_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    settings: Settings,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    await create_webhook(client, tenant, "http://127.0.0.1:9/hook", events=EVENTS)
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    await _schedule_on(app, pod["id"])
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert (await _status(client, tenant, pod["id"]))["target"]["state"] == "available"
    maker, keyring, now = app.state.sessionmaker, _keyring(settings), utcnow()

    assert (await watch(maker, settings, keyring, now + 7 * HOUR)).unavailable == 0
    config = tmp_path / "repo" / "config"
    shutil.move(config, tmp_path / "config.aside")
    result = await watch(maker, settings, keyring, now + 14 * HOUR)
    assert result.went_unavailable == 1
    target = (await _status(client, tenant, pod["id"]))["target"]
    assert (target["state"], target["code"]) == ("unavailable", "repository_missing")
    assert str(tmp_path / "repo") in target["reason"]

    shutil.move(tmp_path / "config.aside", config)
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert (await _status(client, tenant, pod["id"]))["target"]["state"] == "available"
    [recovered] = await _events(app, "target.recovered")
    assert recovered.payload["data"]["by"] == "backup"
    assert len(await _events(app, "target.unavailable")) == 1


async def test_a_pod_due_soon_is_probed_before_its_window(
    app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    """Driven with the scheduler's cursors and a controlled clock: the daily probe is far
    apart (24 h), yet each pod is probed once in the two hours before its nightly run."""
    daily = settings.model_copy(update={"target_probe_hours": 24.0})
    noon = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    async with app.state.sessionmaker() as session:
        account = Account(name="acme")
        session.add(account)
        await session.flush()
        pods = [Pod(account_id=account.id, name=f"p{i}", app="a") for i in range(3)]
        session.add_all(pods)
        await session.flush()
        for i, pod in enumerate(pods):
            session.add(
                BackupSettings(
                    pod_id=pod.id,
                    target_kind="local",
                    target={"path": str(tmp_path / f"repo-{i}")},
                    repo_password="v1:x:y",
                    schedule={
                        "enabled": True,
                        "window_start": "01:00",
                        "window_end": "05:00",
                        "timezone": "UTC",
                    },
                    retention={"keep_daily": 7},
                    verified_ok=True,
                )
            )
        await session.flush()
        assert await plan_all(session, noon) == 3
        await session.commit()
        runs = dict(
            (await session.execute(select(PlanState.pod_id, PlanState.next_run_at))).tuples().all()
        )
    maker, keyring = app.state.sessionmaker, _keyring(settings)
    assert (await watch(maker, daily, keyring, noon)).probed == 3  # never probed
    assert (await watch(maker, daily, keyring, noon + HOUR)).probed == 0

    # Step the clock every 10 minutes up to the last run: each pod is probed exactly once,
    # inside the two hours before its own run, and never otherwise (the daily probe is 24 h).
    probes: dict[uuid.UUID, list[Any]] = {p: [] for p in runs}
    last = max(r for r in runs.values() if r is not None)
    at = noon + HOUR
    while at <= last:
        result = await watch(maker, daily, keyring, at)
        async with maker() as session:
            checked = dict(
                (await session.execute(select(PlanState.pod_id, PlanState.target_checked_at)))
                .tuples()
                .all()
            )
        for pod_id in runs:
            if checked[pod_id] == at:
                probes[pod_id].append(at)
        assert result.probed == sum(1 for p in runs if checked[p] == at)
        at += 10 * MINUTE
    for pod_id, run in runs.items():
        assert run is not None
        [probed_at] = probes[pod_id]
        assert run - 2 * HOUR <= probed_at < run


async def test_the_cron_task_probes_with_the_real_clock_where_the_scheduler_runs(
    app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    async with app.state.sessionmaker() as session:
        account = Account(name="acme")
        session.add(account)
        await session.flush()
        pod = Pod(account_id=account.id, name="p", app="a")
        session.add(pod)
        await session.flush()
        session.add(
            BackupSettings(
                pod_id=pod.id,
                target_kind="local",
                target={"path": str(tmp_path / "gone")},
                repo_password="v1:x:y",
                repository_id="0" * 64,  # a repository was made there, and is gone
                schedule={"enabled": True},
                retention={"keep_daily": 7},
                verified_ok=True,
            )
        )
        await session.commit()

    def ctx(enabled: bool) -> Any:
        svc = SimpleNamespace(
            settings=settings.model_copy(update={"scheduler_enabled": enabled}),
            sessionmaker=app.state.sessionmaker,
            keyring=_keyring(settings),
        )
        return {"services": svc}

    assert await watch_targets(ctx(False)) == {}
    counts = await watch_targets(ctx(True))
    assert (counts["probed"], counts["went_unavailable"], counts["rows_added"]) == (1, 1, 1)
    async with app.state.sessionmaker() as session:
        state = await session.get(PlanState, (pod.id, "owner"))
        assert state is not None
        assert (state.target_state, state.target_code) == ("unavailable", "path_unavailable")


async def test_a_certificate_that_does_not_verify_is_unreachable(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    tls_server: int,
) -> None:
    """The probe's S3 client shares one TLS context across clients: it still verifies."""
    target = {
        "kind": "s3",
        "endpoint": f"127.0.0.1:{tls_server}",  # https, a certificate for another name
        "bucket": "pod-tls-1",
        "access_key_id": "AKIAWATCHEXAMPLE",
        "secret_access_key": "never-in-a-reason-or-a-log",
    }
    pod_id = await _s3_pod(client, tenant, target)
    await _schedule_on(app, pod_id, repository_id="0" * 64)
    result = await watch(app.state.sessionmaker, settings, _keyring(settings), utcnow())
    assert result.went_unavailable == 1
    shown = (await _status(client, tenant, pod_id))["target"]
    assert shown["code"] == "unreachable"
    assert "certificate" in shown["reason"].lower()
    assert "certificate must be valid" in shown["hint"]
