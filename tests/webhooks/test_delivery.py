"""Delivery against a real HTTP receiver on 127.0.0.1: signature, retries, policy, redirects."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from app.models import Webhook, WebhookAttempt, WebhookDelivery
from app.models.base import utcnow
from app.webhooks import events
from app.webhooks.delivery import backoff, deliver_due
from tests.conftest import Tenant
from tests.webhooks.conftest import Receiver, Svc, create_webhook


async def _queue_test(client: httpx.AsyncClient, tenant: Tenant, hook: dict[str, Any]) -> str:
    r = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def _delivery(services: Svc, delivery_id: str) -> WebhookDelivery:
    async with services.sessionmaker() as session:
        found = await session.get(WebhookDelivery, uuid.UUID(delivery_id))
        assert found is not None
        return found


async def _attempts(services: Svc, delivery_id: str) -> list[WebhookAttempt]:
    async with services.sessionmaker() as session:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == uuid.UUID(delivery_id))
            .order_by(WebhookAttempt.id)
        )
        return list(rows)


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    stamp = headers["x-podbackup-timestamp"]
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-podbackup-signature"], f"sha256={mac}")


async def test_delivery_is_signed_and_every_attempt_recorded(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    hook = await create_webhook(client, tenant, receiver.url())
    delivery_id = await _queue_test(client, tenant, hook)

    counts = await deliver_due(services, utcnow())
    assert counts["claimed"] == 1
    assert counts["delivered"] == 1

    [got] = receiver.requests
    assert got.path == "/hook"
    assert _verify(hook["secret"], got.headers, got.body)
    assert not _verify("another-secret-entirely", got.headers, got.body)
    body = json.loads(got.body)
    assert body["id"] == delivery_id == got.headers["x-podbackup-event-id"]
    assert body["event"] == "webhook.test" == got.headers["x-podbackup-event"]
    assert body["data"]["webhook_id"] == hook["id"]
    assert set(body) == {"id", "event", "created_at", "data"}
    assert got.headers["x-podbackup-attempt"] == "1"

    r = await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=tenant.headers)
    [item] = r.json()["items"]
    assert item["status"] == "delivered"
    assert item["attempts"] == 1
    assert item["delivered_at"]
    assert item["next_attempt_at"] is None
    assert item["last_status_code"] == 200
    assert item["last_error"] is None
    [attempt] = item["attempt_log"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["duration_ms"] >= 0
    assert hook["secret"] not in r.text

    # delivered means done: the next tick sends nothing
    assert (await deliver_due(services, utcnow() + timedelta(days=1)))["claimed"] == 0
    assert len(receiver.requests) == 1


async def test_retries_back_off_and_keep_the_event_id(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    hook = await create_webhook(client, tenant, receiver.url())
    delivery_id = await _queue_test(client, tenant, hook)
    receiver.plan = [(500, {}), (503, {})]
    settings = services.settings
    assert backoff(settings, 1) == timedelta(seconds=30)
    assert backoff(settings, 2) == timedelta(seconds=120)
    assert backoff(settings, 50) == timedelta(seconds=settings.webhook_retry_max_seconds)

    t0 = utcnow()
    assert (await deliver_due(services, t0))["retrying"] == 1
    first = await _delivery(services, delivery_id)
    assert first.status == "pending"
    assert first.attempts == 1
    assert first.next_attempt_at == t0 + timedelta(seconds=30)
    assert first.last_status_code == 500
    assert first.last_error == "the receiver answered 500"

    # not due yet: nothing is sent
    assert (await deliver_due(services, t0 + timedelta(seconds=20)))["claimed"] == 0
    assert len(receiver.requests) == 1

    t1 = t0 + timedelta(seconds=31)
    assert (await deliver_due(services, t1))["retrying"] == 1
    second = await _delivery(services, delivery_id)
    assert second.next_attempt_at == t1 + timedelta(seconds=120)

    t2 = t1 + timedelta(seconds=121)
    assert (await deliver_due(services, t2))["delivered"] == 1
    done = await _delivery(services, delivery_id)
    assert done.status == "delivered"
    assert done.attempts == 3

    assert [r.headers["x-podbackup-event-id"] for r in receiver.requests] == [delivery_id] * 3
    assert [r.headers["x-podbackup-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert len({r.body for r in receiver.requests}) == 1  # byte-identical payload
    assert all(_verify(hook["secret"], r.headers, r.body) for r in receiver.requests)
    assert [a.status_code for a in await _attempts(services, delivery_id)] == [500, 503, 200]


async def test_max_attempts_then_failed(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    services.settings = services.settings.model_copy(update={"webhook_max_attempts": 2})
    hook = await create_webhook(client, tenant, receiver.url())
    delivery_id = await _queue_test(client, tenant, hook)
    receiver.plan = [(500, {}), (500, {}), (200, {})]
    t0 = utcnow()
    assert (await deliver_due(services, t0))["retrying"] == 1
    assert (await deliver_due(services, t0 + timedelta(hours=1)))["failed"] == 1
    failed = await _delivery(services, delivery_id)
    assert failed.status == "failed"
    assert failed.next_attempt_at is None
    assert failed.attempts == 2
    assert (await deliver_due(services, t0 + timedelta(days=2)))["claimed"] == 0
    assert len(receiver.requests) == 2


async def test_a_redirect_is_a_failure_and_not_followed(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    hook = await create_webhook(client, tenant, receiver.url())
    delivery_id = await _queue_test(client, tenant, hook)
    # the redirect points at an address this service must not reach, and at the receiver
    receiver.plan = [(302, {"Location": "http://169.254.169.254/latest/meta-data"})]
    receiver.plan += [(307, {"Location": receiver.url("/internal")})]
    t0 = utcnow()
    await deliver_due(services, t0)
    await deliver_due(services, t0 + timedelta(minutes=1))
    assert receiver.paths() == ["/hook", "/hook"]
    attempts = await _attempts(services, delivery_id)
    assert [a.status_code for a in attempts] == [302, 307]
    assert all("redirects are not followed" in (a.error or "") for a in attempts)
    assert (await _delivery(services, delivery_id)).status == "pending"


async def test_policy_refuses_at_delivery_when_the_allow_list_is_gone(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    hook = await create_webhook(client, tenant, receiver.url())  # allowed when saved
    delivery_id = await _queue_test(client, tenant, hook)
    services.settings = services.settings.model_copy(update={"allow_networks": []})
    counts = await deliver_due(services, utcnow())
    assert counts["retrying"] == 1
    assert receiver.requests == []
    [attempt] = await _attempts(services, delivery_id)
    assert attempt.status_code is None
    assert attempt.error
    assert "outbound-address policy" in attempt.error
    assert "loopback" in attempt.error


async def test_a_name_is_connected_to_at_its_checked_address(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    hook = await create_webhook(client, tenant, receiver.url(host="localhost"))
    await _queue_test(client, tenant, hook)
    assert (await deliver_due(services, utcnow()))["delivered"] == 1
    [got] = receiver.requests
    assert got.headers["host"] == f"localhost:{receiver.port}"
    assert _verify(hook["secret"], got.headers, got.body)


async def test_slow_receiver_times_out(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    services.settings = services.settings.model_copy(update={"http_timeout_seconds": 0.3})
    hook = await create_webhook(client, tenant, receiver.url("/slow"))
    delivery_id = await _queue_test(client, tenant, hook)
    receiver.delay = 1.5
    assert (await deliver_due(services, utcnow()))["retrying"] == 1
    [attempt] = await _attempts(services, delivery_id)
    assert attempt.status_code is None
    assert attempt.error == "no answer within 0.3 s"


async def test_inactive_and_deleted_webhooks_are_not_sent(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    paused = await create_webhook(client, tenant, receiver.url("/paused"))
    gone = await create_webhook(client, tenant, receiver.url("/gone"))
    paused_delivery = await _queue_test(client, tenant, paused)
    await _queue_test(client, tenant, gone)
    async with services.sessionmaker() as session:
        await session.execute(
            update(Webhook).where(Webhook.id == uuid.UUID(paused["id"])).values(active=False)
        )
        await session.commit()
    r = await client.delete(f"/v1/webhooks/{gone['id']}", headers=tenant.headers)
    assert r.status_code == 204
    counts = await deliver_due(services, utcnow())
    assert counts["claimed"] == 0
    assert counts["dropped"] == 1
    assert receiver.requests == []
    dropped = await _delivery(services, paused_delivery)
    assert dropped.status == "failed"
    assert "inactive" in (dropped.last_error or "")


async def test_two_workers_send_each_delivery_once(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, services: Svc
) -> None:
    services.settings = services.settings.model_copy(update={"webhook_concurrency": 3})
    hook = await create_webhook(client, tenant, receiver.url())
    async with services.sessionmaker() as session:
        row = await session.get(Webhook, uuid.UUID(hook["id"]))
        assert row is not None
        ids = [str(events.queue(session, row, "job.failed", {"n": n}).id) for n in range(20)]
        await session.commit()
    now = utcnow()
    results = await asyncio.gather(*(deliver_due(services, now, limit=8) for _ in range(4)))
    assert sum(r["delivered"] for r in results) == 20
    sent = [r.headers["x-podbackup-event-id"] for r in receiver.requests]
    assert sorted(sent) == sorted(ids)  # every event once, none twice
